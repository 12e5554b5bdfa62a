/**
 * Your own authentication in front of herald's handlers (golongpoll's pattern). Each transport's
 * handler is a plain `(req, res)` function: wrap it, mount it where you like.
 *
 * - `GET /events` and `POST /publish`: golongpoll's endpoints on the app's own routes, behind a
 *   session check (Express middleware).
 * - `/realtime/*`: herald mounted as a whole, with its `/realtime/poll` route replaced by a
 *   wrapped one and its WebSocket upgrade refused (401) without the token.
 *
 * Run: `node --import tsx examples/auth-wrapper.ts`, then
 *   curl -H 'authorization: Bearer secret-token' 'http://127.0.0.1:3000/events?category=news&timeout=30'
 *
 * In an application, import from 'herald/mount'.
 */
import type { IncomingMessage } from 'node:http';
import type { AddressInfo } from 'node:net';
import express, { type RequestHandler } from 'express';
import { attachUpgrades, createHerald, heraldExpress, rejectUpgrade, type HeraldHandler, type RouteHandler } from '../src/mount/index.js';

const TOKEN = process.env.TOKEN ?? 'secret-token';

/** Your check: a session, a JWT, an API key… */
function authorized(req: IncomingMessage): boolean {
  return req.headers.authorization === `Bearer ${TOKEN}`;
}

const herald = await createHerald({ prefix: '/realtime' });

// 1. herald's routes, wrapped inside herald: the wrapped handler replaces the mounted one.
const requireToken =
  (handler: HeraldHandler): RouteHandler =>
  (req, res, url) => {
    if (!authorized(req)) {
      res.writeHead(401, { 'content-type': 'application/json' }).end('{"error":{"code":"unauthorized","message":"log in first"}}');
      return;
    }
    return handler(req, res, url);
  };
herald.routes.set('* /poll', requireToken(herald.handlers.poll));
herald.upgrades.set('/ws', (req, socket, head) => {
  if (!authorized(req)) return rejectUpgrade(socket, 401, 'log in first');
  herald.handlers.websocket(req, socket, head);
});

// 2. herald's handlers alone, on the application's own routes, behind its own middleware.
const app = express();
const auth: RequestHandler = (req, res, next) => {
  if (authorized(req)) next();
  else res.status(401).json({ error: 'log in first' });
};
app.get('/events', auth, (req, res) => void herald.handlers.golongpollEvents(req, res));
app.post('/publish', auth, (req, res) => void herald.handlers.golongpollPublish(req, res));
app.use(heraldExpress(herald));

const server = app.listen(Number(process.env.PORT ?? 3000), '127.0.0.1', () => {
  console.log(`listening on http://127.0.0.1:${(server.address() as AddressInfo).port}`);
});
attachUpgrades(server, herald);

const stop = async (): Promise<void> => {
  await herald.close();
  server.close(() => process.exit(0));
};
process.once('SIGTERM', () => void stop());
process.once('SIGINT', () => void stop());
