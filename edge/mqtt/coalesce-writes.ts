import type { Writable } from 'node:stream';

/**
 * Gathers a socket's plain buffer writes until the event loop's check phase and sends them as one
 * buffer: mqtt-packet writes each PUBACK as several small buffers and uncorks after every packet,
 * so a burst of received QoS 1 messages cost one syscall per PUBACK, and corking instead still
 * handed the kernel one iovec per piece (writev was a fifth of a noop subscriber's profile).
 * Any other write, and `end`, sends what is gathered first, so the byte order never changes.
 */
export function coalesceWrites(socket: Writable): void {
  const write = socket.write.bind(socket) as (...args: unknown[]) => boolean;
  const end = socket.end.bind(socket) as (...args: unknown[]) => Writable;
  let pending: Buffer[] = [];
  const flush = () => {
    if (pending.length === 0) return;
    const chunks = pending;
    pending = [];
    if (!socket.destroyed) write(chunks.length === 1 ? chunks[0] : Buffer.concat(chunks));
  };
  socket.write = ((...args: unknown[]) => {
    const chunk = args[0];
    if (args.length === 1 && Buffer.isBuffer(chunk)) {
      if (pending.length === 0) setImmediate(flush);
      pending.push(chunk);
      // What is gathered is one event-loop turn's acknowledgements: small, and sent next phase.
      return true;
    }
    flush();
    return write(...args);
  }) as Writable['write'];
  socket.end = ((...args: unknown[]) => {
    flush();
    return end(...args);
  }) as Writable['end'];
}
