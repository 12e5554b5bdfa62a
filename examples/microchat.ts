/**
 * A golongpoll-style microchat: a page, messages POSTed to `/chat/send` and received by long
 * polling `/chat/events`, both served by herald's golongpoll handlers on this application's own
 * routes, the publish one behind the application's own check (a small rate limit).
 * Run: `node --import tsx examples/microchat.ts` and open http://127.0.0.1:3000 in two tabs.
 *
 * In an application, import from 'herald/mount'.
 */
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { createHerald } from '../src/mount/index.js';

const herald = await createHerald({ namespaces: { '': { historySize: 50 } } });

/** At most 5 messages per 10 s per address: the application's own check before herald's handler. */
const recent = new Map<string, number[]>();
function allowed(req: IncomingMessage): boolean {
  const who = req.socket.remoteAddress ?? '?';
  const now = Date.now();
  const times = (recent.get(who) ?? []).filter((t) => now - t < 10_000);
  if (times.length >= 5) return false;
  times.push(now);
  recent.set(who, times);
  return true;
}

const PAGE = `<!doctype html>
<meta charset="utf-8"><title>microchat</title>
<style>body{font:16px system-ui;max-width:40em;margin:2em auto}#log{min-height:10em;border:1px solid #ccc;padding:.5em}</style>
<h1>microchat</h1>
<div id="log"></div>
<form id="f"><input id="name" placeholder="name" size="8"> <input id="text" placeholder="message" size="40" autofocus> <button>send</button></form>
<script>
const log = document.getElementById('log');
function show(event) {
  const line = document.createElement('div');
  line.textContent = new Date(event.timestamp).toLocaleTimeString() + ' ' + event.data.name + ': ' + event.data.text;
  log.append(line);
}
async function poll() {
  let sinceTime = 1, lastId = '';
  for (;;) {
    try {
      const q = 'category=chat&timeout=30&since_time=' + sinceTime + (lastId ? '&last_id=' + lastId : '');
      const answer = await (await fetch('/chat/events?' + q)).json();
      if (answer.events && answer.events.length) {
        answer.events.forEach(show);
        const last = answer.events[answer.events.length - 1];
        sinceTime = last.timestamp; lastId = last.id;
      } else if (answer.timestamp) { sinceTime = answer.timestamp; lastId = ''; }
    } catch { await new Promise((r) => setTimeout(r, 2000)); }
  }
}
document.getElementById('f').onsubmit = async (e) => {
  e.preventDefault();
  const text = document.getElementById('text');
  const name = document.getElementById('name').value || 'anon';
  const res = await fetch('/chat/send', { method: 'POST', headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ category: 'chat', data: { name, text: text.value } }) });
  if (res.ok) text.value = ''; else alert((await res.json()).error);
};
poll();
</script>`;

const server = createServer((req: IncomingMessage, res: ServerResponse) => {
  const path = (req.url ?? '/').split('?')[0];
  if (path === '/') {
    res.writeHead(200, { 'content-type': 'text/html; charset=utf-8' }).end(PAGE);
  } else if (path === '/chat/events') {
    void herald.handlers.golongpollEvents(req, res);
  } else if (path === '/chat/send') {
    if (!allowed(req)) res.writeHead(429, { 'content-type': 'application/json' }).end('{"error":"slow down"}');
    else void herald.handlers.golongpollPublish(req, res);
  } else {
    res.writeHead(404, { 'content-type': 'text/plain' }).end('not found\n');
  }
});

server.listen(Number(process.env.PORT ?? 3000), '127.0.0.1', () => {
  console.log(`listening on http://127.0.0.1:${(server.address() as AddressInfo).port}`);
});

const stop = async (): Promise<void> => {
  await herald.close(); // waiting polls are answered
  server.close(() => process.exit(0));
};
process.once('SIGTERM', () => void stop());
process.once('SIGINT', () => void stop());
