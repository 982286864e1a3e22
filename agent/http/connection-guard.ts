import type { Server } from 'node:net';
import type { Socket } from 'node:net';
import type { IncomingMessage, ServerResponse } from 'node:http';

/** Options of the connection guard. */
export interface ConnectionGuardOptions {
  /** Connections served at most. */
  readonly max: number;
  /** A connection younger than this is never closed to make room (default 1 s): it is sending its request. */
  readonly graceMs?: number;
  readonly now?: () => number;
  /** A connection was refused at the cap, or an idle one closed to make room. */
  readonly onClose: (reason: 'max_connections' | 'evicted') => void;
}

interface Entry {
  /** The socket HTTP reads from (the TLS socket once the handshake is done). */
  socket: Socket;
  /** Requests in progress on it. */
  busy: number;
  /** Since when it has been waiting (connected, or its last response finished). */
  since: number;
}

/** What the guard reports. */
export interface ConnectionGuard {
  /** Connections open now. */
  open(): number;
}

function key(socket: Socket): string {
  return `${socket.remoteAddress ?? ''}|${socket.remotePort ?? ''}`;
}

/**
 * Bounds the connections of an HTTP(S) server. A connection arriving when `max` are open makes
 * room by closing the one that has waited longest (at least `graceMs`) without a request in
 * progress: idle keep-alive, a request trickling its headers, a TLS handshake that does not
 * finish. Slow clients holding every slot therefore cannot lock a scraper out, and the process
 * never runs out of file descriptors for its collectors; when every connection is busy, the
 * newcomer is refused (counted as max_connections).
 */
export function guardConnections(server: Server, options: ConnectionGuardOptions): ConnectionGuard {
  const now = options.now ?? Date.now;
  const graceMs = options.graceMs ?? 1000;
  const entries = new Map<string, Entry>();
  // One over the cap: the newcomer that makes room (or is refused). Beyond that Node closes a
  // connection at accept, before it costs a JS object.
  server.maxConnections = options.max + 1;
  server.on('drop', () => options.onClose('max_connections'));

  const admit = (newcomer: Entry): void => {
    let victim: [string, Entry] | undefined;
    const oldest = now() - graceMs;
    for (const e of entries) {
      if (e[1] === newcomer || e[1].busy > 0 || e[1].since > oldest) continue;
      if (!victim || e[1].since < victim[1].since) victim = e;
    }
    if (!victim) {
      // Every other connection is busy or just arrived: this one waits its turn elsewhere.
      entries.delete(key(newcomer.socket));
      newcomer.socket.destroy();
      options.onClose('max_connections');
      return;
    }
    entries.delete(victim[0]);
    victim[1].socket.destroy();
    options.onClose('evicted');
  };

  server.on('connection', (socket: Socket) => {
    const k = key(socket);
    const entry: Entry = { socket, busy: 0, since: now() };
    entries.set(k, entry);
    socket.once('close', () => {
      if (entries.get(k) === entry) entries.delete(k);
    });
    if (entries.size > options.max) admit(entry);
  });
  // A TLS server hands HTTP a socket of its own once the handshake is done.
  server.on('secureConnection', (socket: Socket) => {
    const entry = entries.get(key(socket));
    if (entry) entry.socket = socket;
  });
  server.on('request', (request: IncomingMessage, response: ServerResponse) => {
    const entry = entries.get(key(request.socket));
    if (!entry) return;
    entry.busy++;
    response.once('close', () => {
      entry.busy--;
      entry.since = now();
    });
  });
  return { open: () => entries.size };
}
