/**
 * herald/sockets: a broadcast route. Every JSON message a client sends goes to every connected
 * client, encoded once; a client that cannot keep up is closed 4008 instead of buffering without
 * limit. Run: `node --import tsx examples/sockets-broadcast.ts` and open two `wscat -c ws://127.0.0.1:3000/room`.
 *
 * In an application, import from 'herald/sockets'.
 */
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { attachUpgrades, jsonSocket } from '../src/sockets/index.js';

let nextId = 1;

const room = jsonSocket({ path: '/room', maxBufferedBytes: 256 * 1024 }, async (socket) => {
  const id = nextId++;
  room.broadcast({ joined: id }, socket);
  await socket.send({ you: id, online: room.size });
  for await (const data of socket) room.broadcast({ from: id, data });
  const { code } = await socket.closed;
  room.broadcast({ left: id, code });
});

const server = createServer((_req, res) => {
  res.writeHead(200, { 'content-type': 'text/plain; charset=utf-8' });
  res.end(`broadcast room at /room: ${room.size} connected\n`);
});
attachUpgrades(server, room);

server.listen(Number(process.env.PORT ?? 3000), '127.0.0.1', () => {
  console.log(`listening on http://127.0.0.1:${(server.address() as AddressInfo).port}`);
});

const stop = async (): Promise<void> => {
  await room.close();
  server.close(() => process.exit(0));
};
process.once('SIGTERM', () => void stop());
process.once('SIGINT', () => void stop());
