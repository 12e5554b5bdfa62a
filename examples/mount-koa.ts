/**
 * herald mounted under /realtime of a Koa 3 application: a middleware before the others
 * (it hands herald the raw request and response); upgrades hooked on `app.listen()`'s server.
 * Run: `node --import tsx examples/mount-koa.ts`.
 *
 * In an application, import from 'herald/mount'.
 */
import type { AddressInfo } from 'node:net';
import Koa from 'koa';
import { attachUpgrades, createHerald, heraldKoa } from '../src/mount/index.js';

const herald = await createHerald({ prefix: '/realtime' });
const app = new Koa();
app.use(heraldKoa(herald));
app.use(async (ctx) => {
  if (ctx.path === '/') ctx.body = 'my Koa app; herald is at /realtime\n';
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
