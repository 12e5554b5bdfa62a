/** herald on a plain node:http server: `mount(server, herald)` and `heraldHttp(herald, app)`. */
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import { attachUpgrades, heraldHttp, mount } from '../../src/mount/index.js';
import { closeServer, listen, readJson } from './app-helpers.js';
import { mountContract } from './contract.js';

function app(name: string) {
  return (req: IncomingMessage, res: ServerResponse): void => {
    if (req.method === 'GET' && req.url === '/hello') {
      res.writeHead(200, { 'content-type': 'text/plain' }).end(`hello from ${name}`);
      return;
    }
    if (req.method === 'POST' && req.url === '/app/echo') {
      void readJson(req).then((body) => res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(body)));
      return;
    }
    res.writeHead(404, { 'content-type': 'text/plain' }).end('app: not found');
  };
}

mountContract('node:http', async (herald, echo) => {
  const server = createServer(app('node:http'));
  mount(server, herald);
  attachUpgrades(server, echo);
  const base = await listen(server);
  return { base, close: () => closeServer(server) };
});

mountContract('node:http with heraldHttp', async (herald, echo) => {
  const server = createServer(heraldHttp(herald, app('node:http with heraldHttp')));
  attachUpgrades(server, herald, echo);
  const base = await listen(server);
  return { base, close: () => closeServer(server) };
});
