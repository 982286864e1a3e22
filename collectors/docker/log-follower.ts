/** A log position: Unix seconds and nanoseconds, as the Engine's `timestamps=true` prefix gives it. */
export interface LogCursor {
  readonly sec: number;
  readonly nsec: number;
}

/** `sec.nnnnnnnnn`, the form the logs endpoint's `since` takes. */
export function cursorSince(c: LogCursor): string {
  return `${c.sec}.${String(c.nsec).padStart(9, '0')}`;
}

/** A cursor at a Unix time in milliseconds. */
export function cursorAt(ms: number): LogCursor {
  const sec = Math.floor(ms / 1000);
  return { sec, nsec: Math.round((ms - sec * 1000) * 1e6) };
}

function after(a: LogCursor, b: LogCursor): boolean {
  return a.sec > b.sec || (a.sec === b.sec && a.nsec > b.nsec);
}

const TS_RE = /^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(?:\.(\d{1,9}))?(Z|[+-]\d\d:\d\d) /;

/** Splits `2026-11-28T12:41:52.511356548Z text` into its time and text; undefined without a stamp. */
export function parseStampedLine(
  line: string,
): { cursor: LogCursor; atMs: number; text: string } | undefined {
  const m = TS_RE.exec(line);
  if (!m?.[1] || !m[3]) return undefined;
  const ms = Date.parse(`${m[1]}${m[3]}`);
  if (!Number.isFinite(ms)) return undefined;
  const nsec = Number((m[2] ?? '').padEnd(9, '0'));
  const sec = ms / 1000;
  return {
    cursor: { sec, nsec },
    atMs: ms + Math.floor(nsec / 1e6),
    text: line.slice(m[0].length),
  };
}

/**
 * Turns the logs endpoint's byte stream into lines. Without a TTY the Engine multiplexes stdout
 * and stderr in frames (8-byte header: stream, 0, 0, 0, big-endian length), each stream keeps its
 * own partial line; with a TTY the bytes are the terminal's. Written by hand (dockerode's
 * demuxStream writes to two streams and buffers without bound): lines longer than `maxLineChars`
 * are cut there, so a container printing without newlines cannot grow the agent's memory.
 */
export class LogLineDecoder {
  private header = Buffer.alloc(0);
  private remaining = 0;
  private stream = 1;
  private readonly partial = new Map<number, string>();

  constructor(
    private readonly multiplexed: boolean,
    private readonly onLine: (line: string) => void,
    private readonly maxLineChars = 64 * 1024,
  ) {}

  /** Feeds bytes from the logs endpoint. */
  push(chunk: Buffer): void {
    if (!this.multiplexed) {
      this.text(1, chunk.toString('utf8'));
      return;
    }
    let buf = chunk;
    while (buf.length > 0) {
      if (this.remaining === 0) {
        const need = 8 - this.header.length;
        this.header = Buffer.concat([this.header, buf.subarray(0, need)]);
        buf = buf.subarray(need);
        if (this.header.length < 8) return;
        this.stream = this.header[0] ?? 1;
        this.remaining = this.header.readUInt32BE(4);
        this.header = Buffer.alloc(0);
        continue;
      }
      const take = Math.min(this.remaining, buf.length);
      this.text(this.stream, buf.subarray(0, take).toString('utf8'));
      this.remaining -= take;
      buf = buf.subarray(take);
    }
  }

  /** Emits what is left without a final newline. */
  end(): void {
    for (const [stream, rest] of this.partial) {
      if (rest) this.onLine(rest);
      this.partial.delete(stream);
    }
  }

  private text(stream: number, text: string): void {
    let acc = (this.partial.get(stream) ?? '') + text;
    let nl = acc.indexOf('\n');
    while (nl !== -1) {
      this.onLine(acc.slice(0, nl).replace(/\r$/, ''));
      acc = acc.slice(nl + 1);
      nl = acc.indexOf('\n');
    }
    if (acc.length > this.maxLineChars) {
      this.onLine(acc.slice(0, this.maxLineChars));
      acc = '';
    }
    this.partial.set(stream, acc);
  }
}

/** Opens `GET /containers/{id}/logs?follow=1&stdout=1&stderr=1&timestamps=1&since=...`. */
export type OpenLogs = (since: string) => Promise<NodeJS.ReadableStream>;

/** Options of one container's log follower. */
export interface LogFollowerOptions {
  readonly open: OpenLogs;
  /** Container created with a TTY: the stream is not multiplexed. */
  readonly tty: boolean;
  /** Only lines after this position are passed on (a reattach after a restart re-reads nothing). */
  readonly from: LogCursor;
  readonly onLine: (text: string, atMs: number) => void;
  /** The stream ended (the container stopped) or could not be opened. */
  readonly onEnd: (error?: unknown) => void;
}

/**
 * Follows one container's logs as the Engine streams them (no polling) until the container
 * stops; the cursor remembers how far it read.
 */
export class LogFollower {
  private stream: (NodeJS.ReadableStream & { destroy?: () => void }) | undefined;
  private stopped = false;
  cursor: LogCursor;

  constructor(private readonly options: LogFollowerOptions) {
    this.cursor = options.from;
  }

  /** Opens the stream; resolves once it is open (or failed, which `onEnd` reports). */
  async start(): Promise<void> {
    let stream: NodeJS.ReadableStream;
    try {
      stream = await this.options.open(cursorSince(this.cursor));
    } catch (err) {
      if (!this.stopped) this.options.onEnd(err);
      return;
    }
    if (this.stopped) {
      (stream as NodeJS.ReadableStream & { destroy?: () => void }).destroy?.();
      return;
    }
    this.stream = stream;
    const decoder = new LogLineDecoder(!this.options.tty, (line) => this.line(line));
    stream.on('data', (chunk: Buffer | string) =>
      decoder.push(typeof chunk === 'string' ? Buffer.from(chunk) : chunk),
    );
    let ended = false;
    const end = (err?: unknown) => {
      if (ended) return;
      ended = true;
      decoder.end();
      this.stream = undefined;
      if (!this.stopped) this.options.onEnd(err);
    };
    stream.on('end', () => end());
    stream.on('close', () => end());
    stream.on('error', (err: Error) => end(err));
  }

  /** Stops following (idempotent). */
  stop(): void {
    this.stopped = true;
    const s = this.stream;
    this.stream = undefined;
    s?.removeAllListeners();
    s?.on('error', () => undefined);
    s?.destroy?.();
  }

  private line(line: string): void {
    const stamped = parseStampedLine(line);
    if (!stamped) return;
    if (!after(stamped.cursor, this.cursor)) return;
    this.cursor = stamped.cursor;
    this.options.onLine(stamped.text, stamped.atMs);
  }
}
