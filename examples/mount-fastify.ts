/**
 * herald mounted under /realtime of a Fastify 5 application: one plugin registers the routes
 * (bypassing Fastify's body parsing), hooks the upgrades, and closes herald with Fastify.
 * Run: `node --import tsx examples/mount-fastify.ts`.
 *
 * In an application, import from 'herald/mount'.
 */
import Fastify from 'fastify';
import { createHerald, heraldFastify } from '../src/mount/index.js';

const herald = await createHerald({ prefix: '/realtime' });
const app = Fastify();
await app.register(heraldFastify(herald));

app.get('/', async () => 'my Fastify app; herald is at /realtime\n');
app.post('/orders', async (req, reply) => {
  const result = await herald.hub.publish('orders', req.body);
  return reply.code(201).send({ offset: result.offset });
});

const url = await app.listen({ port: Number(process.env.PORT ?? 3000), host: '127.0.0.1' });
console.log(`listening on ${url}`);

const stop = async (): Promise<void> => {
  await app.close(); // herald closes first (preClose)
  process.exit(0);
};
process.once('SIGTERM', () => void stop());
process.once('SIGINT', () => void stop());
