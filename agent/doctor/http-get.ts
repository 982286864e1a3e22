import { request, type RequestOptions } from 'node:http';

/** A status and a body, as far as it was kept. */
export interface HttpAnswer {
  readonly status: number;
  readonly body: string;
}

/**
 * One GET with node:http, keeping at most about `maxBytes` of the body; no answer within
 * `timeoutMs` fails with an ETIMEDOUT error, so checks report it like any other errno.
 */
// node:http rather than fetch: fetch refuses the WHATWG "bad ports" (6000, 6665-6669, 10080...)
// and cannot dial a unix socket; node:http also keeps each errno visible.
export function httpGet(
  options: Omit<RequestOptions, 'method' | 'timeout'>,
  timeoutMs: number,
  maxBytes: number,
): Promise<HttpAnswer> {
  return new Promise((resolve, reject) => {
    const req = request({ ...options, method: 'GET', timeout: timeoutMs }, (res) => {
      const chunks: Buffer[] = [];
      let size = 0;
      res.on('data', (c: Buffer) => {
        size += c.length;
        if (size < maxBytes) chunks.push(c);
      });
      res.on('end', () =>
        resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString('utf8') }),
      );
      res.on('error', reject);
    });
    req.on('timeout', () => {
      const err: NodeJS.ErrnoException = new Error(`no answer within ${timeoutMs}ms`);
      err.code = 'ETIMEDOUT';
      req.destroy(err);
    });
    req.on('error', reject);
    req.end();
  });
}
