import { createReadStream } from 'node:fs';
import { stat } from 'node:fs/promises';
import { createServer, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join, normalize } from 'node:path';

/** A fault the server injects into one response. */
export type Fault =
  | { readonly kind: 'corrupt' }
  | { readonly kind: 'truncate' }
  | { readonly kind: 'stall'; readonly afterBytes: number }
  | { readonly kind: 'status'; readonly code: number };

/** Options of the loopback store server. */
export interface StoreServerOptions {
  /** Directory served (the store). */
  readonly root: string;
  /** Honour Range headers (default true); false answers 200 with the whole file, like some servers. */
  readonly ranges?: boolean;
  /** Chooses a fault for a request: `path` is relative to the root, `attempt` counts from 1 per path. */
  readonly fault?: (path: string, attempt: number) => Fault | undefined;
}

/** A real node:http server on 127.0.0.1 serving a store directory, with fault injection. */
export class StoreServer {
  private server: Server | undefined;
  private readonly attempts = new Map<string, number>();
  /** Body bytes written to clients. */
  bytesSent = 0;
  /** Requests by path (relative), in order. */
  readonly requests: { path: string; range?: string; status: number }[] = [];
  url = '';

  constructor(private readonly opts: StoreServerOptions) {}

  /** Starts listening on a free port; resolves with the base URL. */
  async start(): Promise<string> {
    this.server = createServer((req, res) => {
      void this.handle(req.url ?? '/', req.headers.range, res);
    });
    await new Promise<void>((resolve) => this.server!.listen(0, '127.0.0.1', resolve));
    const { port } = this.server.address() as AddressInfo;
    this.url = `http://127.0.0.1:${port}/`;
    return this.url;
  }

  /** Stops the server and drops every connection (stalled ones too). */
  async stop(): Promise<void> {
    const s = this.server;
    if (!s) return;
    s.closeAllConnections();
    await new Promise<void>((resolve) => s.close(() => resolve()));
    this.server = undefined;
  }

  private async handle(url: string, range: string | undefined, res: ServerResponse): Promise<void> {
    const rel = normalize(decodeURIComponent(new URL(url, 'http://x').pathname)).replace(
      /^\/+/,
      '',
    );
    if (rel.startsWith('..')) {
      res.writeHead(400).end();
      return;
    }
    const attempt = (this.attempts.get(rel) ?? 0) + 1;
    this.attempts.set(rel, attempt);
    const fault = this.opts.fault?.(rel, attempt);
    const path = join(this.opts.root, rel);
    const st = await stat(path).catch(() => undefined);
    if (fault?.kind === 'status' || !st?.isFile()) {
      const code = fault?.kind === 'status' ? fault.code : 404;
      this.requests.push({ path: rel, range, status: code });
      res.writeHead(code).end();
      return;
    }
    let start = 0;
    let end = st.size - 1;
    let status = 200;
    const m = range ? /^bytes=(\d+)-(\d+)$/.exec(range) : null;
    if (m && this.opts.ranges !== false) {
      start = Number(m[1]);
      end = Math.min(Number(m[2]), st.size - 1);
      if (start > end) {
        this.requests.push({ path: rel, range, status: 416 });
        res.writeHead(416, { 'content-range': `bytes */${st.size}` }).end();
        return;
      }
      status = 206;
    }
    this.requests.push({ path: rel, range, status });
    const length = end - start + 1;
    const headers: Record<string, string | number> = {
      'content-length': length,
      'accept-ranges': this.opts.ranges === false ? 'none' : 'bytes',
    };
    if (status === 206) headers['content-range'] = `bytes ${start}-${end}/${st.size}`;
    res.writeHead(status, headers);
    // A truncating server sends its headers first, as one that dies mid-body does (else a small
    // body and the reset can reach the client together, before it has a response at all).
    if (fault?.kind === 'truncate') res.flushHeaders();
    let sent = 0;
    const limit =
      fault?.kind === 'truncate'
        ? Math.floor(length / 2)
        : fault?.kind === 'stall'
          ? fault.afterBytes
          : length;
    const stream = createReadStream(path, { start, end });
    stream.on('data', (chunk: string | Buffer) => {
      let out = typeof chunk === 'string' ? Buffer.from(chunk) : chunk;
      if (sent + out.length > limit) out = out.subarray(0, Math.max(0, limit - sent));
      if (fault?.kind === 'corrupt' && sent === 0 && out.length > 0) {
        out = Buffer.from(out);
        out[0] = (out[0] ?? 0) ^ 0xff;
      }
      sent += out.length;
      this.bytesSent += out.length;
      if (out.length > 0) res.write(out);
      if (sent >= limit && limit < length) {
        stream.destroy();
        // truncate: end the body early (the client sees fewer bytes); stall: keep the socket open.
        if (fault?.kind === 'truncate') res.destroy();
      }
    });
    stream.on('end', () => res.end());
    stream.on('error', () => res.destroy());
  }
}
