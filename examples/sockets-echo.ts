/**
 * herald/sockets: an echo route. JSON messages in, each checked by a small schema, echoed back;
 * a text route beside it. Run: `node --import tsx examples/sockets-echo.ts` (PORT=… to choose).
 *
 *   wscat -c ws://127.0.0.1:3000/echo      then send {"text":"hi"}
 *
 * In an application, import from 'herald/sockets'.
 */
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { attachUpgrades, jsonSocket, textSocket } from '../src/sockets/index.js';

interface Message {
  text: string;
}

/** Any `(value) => value | throws` works as a schema (zod's `schema.parse` or a zod schema too). */
function message(value: unknown): Message {
  if (typeof value !== 'object' || value === null || typeof (value as Message).text !== 'string') throw new Error('expected {"text": string}');
  return { text: (value as Message).text };
}

const echo = jsonSocket({ path: '/echo', schema: message }, async (socket) => {
  // One message at a time: `send` waits when the peer reads slowly, so memory stays bounded.
  for await (const msg of socket) await socket.send({ echo: msg.text, at: Date.now() });
});

const echoText = textSocket({ path: '/echo-text' }, async (socket) => {
  for await (const text of socket) await socket.send(text);
});

const server = createServer((_req, res) => {
  res.writeHead(200, { 'content-type': 'text/plain; charset=utf-8' });
  res.end('WebSocket echo at /echo (JSON {"text": …}) and /echo-text (text)\n');
});
attachUpgrades(server, echo, echoText);

server.listen(Number(process.env.PORT ?? 3000), '127.0.0.1', () => {
  console.log(`listening on http://127.0.0.1:${(server.address() as AddressInfo).port}`);
});

const stop = async (): Promise<void> => {
  await Promise.all([echo.close(), echoText.close()]);
  server.close(() => process.exit(0));
};
process.once('SIGTERM', () => void stop());
process.once('SIGINT', () => void stop());
