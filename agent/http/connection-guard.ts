import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Server, Socket } from 'node:net';

/** Options of the connection guard. */
export interface ConnectionGuardOptions {
  /** Connections served at most. */
  readonly max: number;
  /**
   * A connection younger than this is not closed to make room for one from the same client
   * (default 1 s): it is still sending its request.
   */
  readonly graceMs?: number;
  readonly now?: () => number;
  /** A connection was refused at the cap, or another closed to make room. */
  readonly onClose: (reason: 'max_connections' | 'evicted') => void;
}

interface Entry {
  /** The socket HTTP reads from (the TLS socket once the handshake is done). */
  socket: Socket;
  /** The client's address. */
  readonly peer: string;
  /** Requests in progress on it. */
  busy: number;
  /** Since when it has been in its state: connected, request started, or response finished. */
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

/** The entry to close first: idle before busy, then the one in its state longest. */
function first(candidates: readonly Entry[]): Entry | undefined {
  let best: Entry | undefined;
  for (const e of candidates) {
    if (
      !best ||
      (e.busy === 0 && best.busy > 0) ||
      ((e.busy === 0) === (best.busy === 0) && e.since < best.since)
    ) {
      best = e;
    }
  }
  return best;
}

/**
 * Bounds the connections of an HTTP(S) server without letting a few clients lock the others out.
 * When a connection arrives with `max` open, one is closed to make room:
 * - if another client address holds more connections than the newcomer's, that client's
 *   connection idle longest (else its longest-running request): a client flooding connections
 *   or trickling requests pays for it, not the scraper that holds one;
 * - otherwise one of the newcomer's own address that has waited at least `graceMs` without a
 *   request in progress (idle keep-alive, trickled headers, a TLS handshake that never ends);
 * - failing both, the newcomer is refused (counted as max_connections).
 * The process so never runs out of file descriptors for its collectors, and a slow client holds
 * a slot only until http.headersTimeout / requestTimeout or until someone needs it.
 */
export function guardConnections(server: Server, options: ConnectionGuardOptions): ConnectionGuard {
  const now = options.now ?? Date.now;
  const graceMs = options.graceMs ?? 1000;
  const entries = new Map<string, Entry>();
  // One over the cap: the newcomer that makes room (or is refused). Beyond that Node closes a
  // connection at accept, before it costs a JS object.
  server.maxConnections = options.max + 1;
  server.on('drop', () => options.onClose('max_connections'));

  const close = (entry: Entry, reason: 'max_connections' | 'evicted') => {
    entries.delete(key(entry.socket));
    entry.socket.destroy();
    options.onClose(reason);
  };

  const admit = (newcomer: Entry): void => {
    const byPeer = new Map<string, Entry[]>();
    for (const e of entries.values()) {
      const list = byPeer.get(e.peer);
      if (list) list.push(e);
      else byPeer.set(e.peer, [e]);
    }
    const own = byPeer.get(newcomer.peer) ?? [];
    let top: Entry[] = [];
    for (const list of byPeer.values()) if (list.length > top.length) top = list;
    if (top.length > own.length) {
      const victim = first(top);
      if (victim) return close(victim, 'evicted');
    }
    const oldest = now() - graceMs;
    const idle = own.filter((e) => e !== newcomer && e.busy === 0 && e.since <= oldest);
    const victim = first(idle);
    close(victim ?? newcomer, victim ? 'evicted' : 'max_connections');
  };

  server.on('connection', (socket: Socket) => {
    const k = key(socket);
    const entry: Entry = { socket, peer: socket.remoteAddress ?? '', busy: 0, since: now() };
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
    entry.since = now();
    response.once('close', () => {
      entry.busy--;
      entry.since = now();
    });
  });
  return { open: () => entries.size };
}
