import { once } from 'node:events';
import { createServer, connect, type Socket, type AddressInfo } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { coalesceWrites } from './coalesce-writes.js';

let cleanup: (() => void)[] = [];
afterEach(() => {
  for (const f of cleanup) f();
  cleanup = [];
});

/** A loopback connection: the client socket, and everything the server side receives. */
async function pair(): Promise<{ client: Socket; received: () => Promise<Buffer> }> {
  const chunks: Buffer[] = [];
  let ended!: Promise<unknown>;
  const server = createServer((s) => {
    s.on('data', (d: Buffer) => chunks.push(d));
    ended = once(s, 'end');
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const client = connect((server.address() as AddressInfo).port, '127.0.0.1');
  await once(client, 'connect');
  cleanup.push(() => {
    client.destroy();
    server.close();
  });
  return {
    client,
    received: async () => {
      await ended;
      return Buffer.concat(chunks);
    },
  };
}

describe('coalesceWrites', () => {
  it('sends a turn of buffer writes as one write, in order, and flushes before other writes and end', async () => {
    const { client, received } = await pair();
    const writes: number[] = [];
    const original = client.write.bind(client) as (...args: unknown[]) => boolean;
    client.write = (...args: unknown[]) => {
      writes.push(Buffer.byteLength(args[0] as Buffer | string));
      return original(...args);
    };
    coalesceWrites(client);

    for (let i = 0; i < 100; i++)
      expect(client.write(Buffer.from([0x40, 0x02, i >> 8, i & 0xff]))).toBe(true);
    expect(writes).toEqual([]);
    await new Promise((r) => setImmediate(r));
    expect(writes).toEqual([400]);

    client.write(Buffer.from('ab'));
    client.write('cd', 'utf8'); // not a plain buffer write: what is gathered goes first
    client.write(Buffer.from('ef'));
    client.end(); // gathered bytes are sent before the FIN
    const bytes = await received();
    expect(bytes.length).toBe(406);
    for (let i = 0; i < 100; i++) expect(bytes.readUInt16BE(i * 4 + 2)).toBe(i);
    expect(bytes.subarray(400).toString()).toBe('abcdef');
    expect(writes).toEqual([400, 2, 2, 2]);
  });

  it('drops what is gathered once the socket is destroyed instead of writing after it', async () => {
    const { client } = await pair();
    coalesceWrites(client);
    client.write(Buffer.from('late'));
    client.destroy();
    const errors: unknown[] = [];
    client.on('error', (e) => errors.push(e));
    await new Promise((r) => setImmediate(r));
    await new Promise((r) => setImmediate(r));
    expect(errors).toEqual([]);
  });
});
