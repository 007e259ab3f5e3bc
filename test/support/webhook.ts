import http from 'node:http';
import type { AddressInfo } from 'node:net';

export interface WebhookPost {
  path: string;
  contentType: string | undefined;
  body: unknown;
}

export interface WebhookServer {
  /** http://127.0.0.1:PORT, without a trailing slash. */
  url: string;
  posts: WebhookPost[];
  close(): Promise<void>;
}

/**
 * A webhook receiver on this machine: records each POST's path and JSON body and answers 200, or 500 where
 * the path starts with /refuse.
 */
export async function startWebhookServer(): Promise<WebhookServer> {
  const posts: WebhookPost[] = [];
  const server = http.createServer((request, response) => {
    const chunks: Buffer[] = [];
    request.on('data', (chunk: Buffer) => chunks.push(chunk));
    request.on('end', () => {
      const path = request.url ?? '';
      if (path.startsWith('/refuse')) {
        response.writeHead(500).end();
        return;
      }
      posts.push({
        path,
        contentType: request.headers['content-type'],
        body: JSON.parse(Buffer.concat(chunks).toString('utf8')),
      });
      response.writeHead(200, { 'content-type': 'text/plain' }).end('ok');
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    posts,
    close: () => new Promise((resolve) => server.close(() => resolve())),
  };
}
