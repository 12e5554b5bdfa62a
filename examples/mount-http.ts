/**
 * herald mounted under /realtime of a plain node:http application: one `mount` call takes
 * herald's requests and upgrades; everything else reaches the application.
 * Run: `node --import tsx examples/mount-http.ts`, then e.g.
 *
 *   curl -N 'http://127.0.0.1:3000/realtime/sse?channel=news' &
 *   curl -H 'content-type: application/json' -d '{"channel":"news","data":"hi"}' http://127.0.0.1:3000/realtime/api/publish
 *
 * In an application, import from 'herald/mount'.
 */
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { createHerald, mount } from '../src/mount/index.js';

const herald = await createHerald({ prefix: '/realtime' });

const server = createServer({ maxHeaderSize: 65_536 }, (req, res) => {
  if (req.url === '/') {
    res.writeHead(200, { 'content-type': 'text/plain; charset=utf-8' });
    res.end('my app; herald is at /realtime (/realtime/ws, /realtime/sse, /realtime/api/…)\n');
    return;
  }
  res.writeHead(404, { 'content-type': 'text/plain' }).end('not found\n');
});
mount(server, herald);

server.listen(Number(process.env.PORT ?? 3000), '127.0.0.1', () => {
  console.log(`listening on http://127.0.0.1:${(server.address() as AddressInfo).port}`);
});

const stop = async (): Promise<void> => {
  await herald.close(); // clients told to reconnect, streams ended, polls answered
  server.close(() => process.exit(0));
};
process.once('SIGTERM', () => void stop());
process.once('SIGINT', () => void stop());
