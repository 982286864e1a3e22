// The floor of bench:scrape: a bare node:http server that answers every request with the same
// bytes from memory (a copy of gpulse's exposition), the cost the issue names as the limit.
// Usage: node bench/scrape-floor.mjs <file> <port>
import { readFileSync } from 'node:fs';
import { createServer } from 'node:http';

const [file, port] = process.argv.slice(2);
const body = readFileSync(file);
const headers = {
  'content-type': 'text/plain; version=0.0.4; charset=utf-8',
  'content-length': body.length,
};
createServer({ keepAliveTimeout: 65_000 }, (_req, res) => {
  res.writeHead(200, headers);
  res.end(body);
}).listen(Number(port), '127.0.0.1');
