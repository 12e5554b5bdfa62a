import { Agent, request } from 'node:http';
import { startSecure } from './helpers.js';
const srv = await startSecure({ namespaceBase: { anonymousSubscribe: true, anonymousPublish: true }, limits: { ipCommandRate: 0, ipPublishRate: 0 } });
srv.http.keepAliveTimeout = 120_000;
const agent = new Agent({ keepAlive: true, maxSockets: 64 });
function send(method: string, body: string | undefined): Promise<string> {
  return new Promise((resolve) => {
    const req = request(`${srv.url}/golongpoll/publish`, { method, agent }, (res) => {
      let t = ''; res.on('data', (c) => (t += c)); res.on("end", () => resolve(`${method} ${res.statusCode}`));
    });
    req.on('error', (e) => resolve(`${method} error ${(e as NodeJS.ErrnoException).code}`));
    req.end(body);
  });
}
const counts = new Map<string, number>();
for (let round = 0; round < 40; round++) {
  const rs = await Promise.all(Array.from({ length: 12 }, (_, i) => send(['PUT', 'POST', 'GET', 'DELETE'][i % 4]!, i % 4 === 2 ? undefined : '{"category":"x","data":[1]}')));
  for (const r of rs) counts.set(r, (counts.get(r) ?? 0) + 1);
}
console.log(counts);
agent.destroy();
await srv.close();
