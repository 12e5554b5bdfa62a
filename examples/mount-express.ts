/**
 * herald mounted under /realtime of an Express 5 application. The middleware goes before any
 * body parser; upgrades are hooked on the server `app.listen()` returns.
 * Run: `node --import tsx examples/mount-express.ts`.
 *
 * In an application, import from 'herald/mount'.
 */
import type { AddressInfo } from 'node:net';
import express from 'express';
import { attachUpgrades, createHerald, heraldExpress } from '../src/mount/index.js';

const herald = await createHerald({ prefix: '/realtime' });
const app = express();
app.use(heraldExpress(herald)); // before express.json(): herald reads its own bodies
app.use(express.json());

app.get('/', (_req, res) => {
  res.type('text/plain').send('my Express app; herald is at /realtime\n');
});
// The application publishes through the hub directly.
app.post('/orders', async (req, res) => {
  const result = await herald.hub.publish('orders', req.body as unknown);
  res.status(201).json({ offset: result.offset });
});

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
