/** herald in a Koa 3 application. */
import Koa from 'koa';
import { attachUpgrades, heraldKoa } from '../../src/mount/index.js';
import { closeServer, listening, readJson } from './app-helpers.js';
import { mountContract } from './contract.js';

mountContract('koa', async (herald, echo) => {
  const app = new Koa();
  app.use(heraldKoa(herald));
  // The application's own body parsing, after herald.
  app.use(async (ctx, next) => {
    if (ctx.method === 'POST') ctx.state.body = await readJson(ctx.req);
    await next();
  });
  app.use(async (ctx) => {
    if (ctx.method === 'GET' && ctx.path === '/hello') ctx.body = 'hello from koa';
    else if (ctx.method === 'POST' && ctx.path === '/app/echo') ctx.body = ctx.state.body;
    else {
      ctx.status = 404;
      ctx.body = 'app: not found';
    }
  });
  const server = app.listen(0, '127.0.0.1');
  attachUpgrades(server, herald, echo);
  return { base: await listening(server), close: () => closeServer(server) };
});
