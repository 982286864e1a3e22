import { request as httpRequest, type IncomingHttpHeaders, type IncomingMessage } from 'node:http';
import { request as httpsRequest, type RequestOptions } from 'node:https';
import type { TLSSocket } from 'node:tls';

/** What a request got back: an answer, or the error that ended it (a refused handshake ...). */
export type Outcome =
  | {
      readonly status: number;
      readonly body: string;
      readonly headers: IncomingHttpHeaders;
      /** TLS only: what the handshake settled. */
      readonly protocol?: string | null;
      readonly cipher?: string;
      readonly serverSerial?: string;
    }
  | { readonly error: string };

/** Options of one request (a fresh connection each time: no keep-alive pooling between checks). */
export interface CallOptions {
  readonly path?: string;
  readonly method?: string;
  /** user:password for basic auth. */
  readonly auth?: string;
  readonly body?: string;
  readonly headers?: Record<string, string>;
  /** Source address (another loopback address, 127.0.0.2, is another client). */
  readonly localAddress?: string;
  /** TLS client options (ca, cert, key, ciphers, versions ...); absent: plain HTTP. */
  readonly tls?: RequestOptions;
}

/** One request to 127.0.0.1:port; resolves with the answer or the error, never rejects. */
export function call(port: number, options: CallOptions = {}): Promise<Outcome> {
  return new Promise((resolve) => {
    const common = {
      host: '127.0.0.1',
      port,
      path: options.path ?? '/',
      method: options.method ?? 'GET',
      agent: false as const,
      ...(options.localAddress ? { localAddress: options.localAddress } : {}),
      headers: {
        ...(options.body === undefined
          ? {}
          : {
              'content-type': 'application/json',
              'content-length': Buffer.byteLength(options.body),
            }),
        ...(options.auth === undefined
          ? {}
          : { authorization: `Basic ${Buffer.from(options.auth).toString('base64')}` }),
        ...options.headers,
      },
    };
    const onResponse = (res: IncomingMessage) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => (body += c));
      res.on('error', (err) =>
        resolve({ error: (err as NodeJS.ErrnoException).code ?? err.message }),
      );
      res.on('end', () => {
        const socket = res.socket as TLSSocket | null;
        const tls =
          options.tls && socket && typeof socket.getProtocol === 'function'
            ? {
                protocol: socket.getProtocol(),
                cipher: socket.getCipher().standardName,
                serverSerial: socket.getPeerCertificate().serialNumber,
              }
            : {};
        resolve({ status: res.statusCode ?? 0, body, headers: res.headers, ...tls });
      });
    };
    const req = options.tls
      ? httpsRequest({ servername: 'localhost', ...common, ...options.tls }, onResponse)
      : httpRequest(common, onResponse);
    req.on('error', (err: NodeJS.ErrnoException) => resolve({ error: err.code ?? err.message }));
    req.end(options.body);
  });
}

/** The status of an outcome, or its error. */
export function statusOf(outcome: Outcome): number | string {
  return 'error' in outcome ? outcome.error : outcome.status;
}
