/** Small pieces shared by the adapter tests: listening on port 0, reading a body, closing a server. */
import type { IncomingMessage, Server } from 'node:http';
import type { AddressInfo } from 'node:net';

export function listen(server: Server): Promise<string> {
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      server.off('error', reject);
      resolve(`http://127.0.0.1:${(server.address() as AddressInfo).port}`);
    });
  });
}

/** Resolves with the base URL once a server an app's `listen(0, '127.0.0.1')` returned is listening. */
export async function listening(server: Server): Promise<string> {
  if (!server.listening) await new Promise((resolve, reject) => server.once('listening', resolve).once('error', reject));
  return baseOf(server);
}

export function baseOf(server: Server): string {
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
}

export function closeServer(server: Server): Promise<void> {
  server.closeAllConnections();
  return new Promise((resolve) => server.close(() => resolve()));
}

export async function readJson(req: IncomingMessage): Promise<unknown> {
  const chunks: Buffer[] = [];
  for await (const chunk of req) chunks.push(chunk as Buffer);
  return JSON.parse(Buffer.concat(chunks).toString('utf8'));
}
