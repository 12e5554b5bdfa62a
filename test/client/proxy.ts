/**
 * A TCP proxy in front of a server, so a test can cut connections abruptly (the client sees an
 * abnormal close, 1006, as on a network drop), refuse new ones, block WebSocket upgrades, and
 * point at another server.
 */
import { createServer, connect, type AddressInfo, type Server, type Socket } from 'node:net';

export class TcpProxy {
  readonly url: string;
  /** When each client connection arrived (ms timestamps), refused ones included. */
  readonly accepted: number[] = [];
  /** While true, new connections are closed at once. */
  refuse = false;
  /** While true, WebSocket upgrade requests get 403, as from a proxy that blocks WebSockets. */
  blockWebSocket = false;
  targetPort: number;
  private readonly server: Server;
  private readonly sockets = new Set<Socket>();

  private constructor(server: Server, targetPort: number) {
    this.server = server;
    this.targetPort = targetPort;
    this.url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  }

  static async start(targetPort: number): Promise<TcpProxy> {
    const server = createServer();
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const proxy = new TcpProxy(server, targetPort);
    server.on('connection', (socket) => proxy.accept(socket));
    return proxy;
  }

  /** Destroys every open connection, both sides, without a close frame. */
  cutAll(): number {
    const n = this.sockets.size;
    for (const s of this.sockets) s.destroy();
    this.sockets.clear();
    return n / 2;
  }

  close(): Promise<void> {
    this.cutAll();
    return new Promise((resolve) => this.server.close(() => resolve()));
  }

  private accept(client: Socket): void {
    this.accepted.push(Date.now());
    if (this.refuse) {
      client.destroy();
      return;
    }
    if (this.blockWebSocket) {
      client.once('data', (first: Buffer) => {
        if (/^upgrade:\s*websocket/im.test(first.toString('latin1'))) {
          client.end('HTTP/1.1 403 Forbidden\r\ncontent-length: 0\r\nconnection: close\r\n\r\n');
          return;
        }
        client.pause();
        this.pipe(client, first);
      });
      client.on('error', () => client.destroy());
      return;
    }
    this.pipe(client);
  }

  private pipe(client: Socket, first?: Buffer): void {
    const upstream = connect(this.targetPort, '127.0.0.1');
    if (first) upstream.write(first);
    for (const [a, b] of [
      [client, upstream],
      [upstream, client],
    ] as const) {
      this.sockets.add(a);
      a.on('error', () => b.destroy());
      a.on('close', () => {
        this.sockets.delete(a);
        b.destroy();
      });
      a.pipe(b);
    }
    client.resume();
  }
}
