// A round-robin HTTP load balancer for the replica tests: each request goes to the next replica;
// a replica that refuses the connection is skipped, as a load balancer's health check would; a
// request cut off mid-way is answered 502 (the client decides whether to retry).
import { createServer, request, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';

export interface LoadBalancer {
  url: string;
  close(): Promise<void>;
}

export async function startLoadBalancer(ports: () => readonly number[]): Promise<LoadBalancer> {
  let next = 0;

  const forward = (req: IncomingMessage, body: Buffer, res: ServerResponse, tried: number): void => {
    const targets = ports();
    if (tried >= targets.length) {
      res.writeHead(502, { 'Content-Type': 'text/plain' }).end('no replica answered');
      return;
    }
    const port = targets[next++ % targets.length] as number;
    const upstream = request({ host: '127.0.0.1', port, method: req.method, path: req.url, headers: req.headers }, (answer) => {
      res.writeHead(answer.statusCode ?? 502, answer.headers);
      answer.pipe(res);
      answer.on('error', () => res.destroy());
    });
    upstream.on('error', (err: NodeJS.ErrnoException) => {
      if (res.headersSent) return res.destroy();
      // Not connected at all: another replica can take the request whole.
      if (err.code === 'ECONNREFUSED') return forward(req, body, res, tried + 1);
      res.writeHead(502, { 'Content-Type': 'text/plain' }).end(`replica failed: ${err.code ?? err.message}`);
    });
    upstream.end(body);
  };

  const server: Server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (chunk: Buffer) => chunks.push(chunk));
    req.on('end', () => forward(req, Buffer.concat(chunks), res, 0));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
