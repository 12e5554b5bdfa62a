#!/usr/bin/env node
// The baseline that `herald bench --baseline` measures herald against: the cheapest fan-out
// a Node process can do with the `ws` package, nothing more.
//
// - WebSocket `/ws`: answers `connect` and `subscribe` like herald (SPEC §2) and nothing else.
//   A publish is serialised once, framed once with `WebSocket.Sender.frame` and the same buffer
//   is written to every subscriber's socket (one write per socket, no queue, no limits).
// - SSE `/sse` and long-poll `/poll`: the same idea over HTTP (one string per publish written to
//   every stream / every waiting poll), with cursors in herald's format so the same client works.
// - `POST /api/publish {channel, data}` answers like herald; `GET /api/stats` gives counts.
//
// It keeps no history beyond a small ring for long-poll, no auth and no per-client state worth the
// name: it is the floor, not a competitor. Its one guard is herald's default slow-consumer rule
// (a WebSocket subscriber with over 1 MiB unsent is closed with 4008), so that an overloaded run
// compares like with like and cannot buffer gigabytes.
//
// Usage: node bench/baseline-ws-server.mjs [--port 0] [--host 127.0.0.1]
// Prints `listening on http://HOST:PORT` like `herald serve`. SIGTERM/SIGINT: close and exit 0.
import { randomUUID } from 'node:crypto';
import { createServer } from 'node:http';
import { Sender, WebSocketServer } from 'ws';

const args = process.argv.slice(2);
function flag(name, fallback) {
  const i = args.indexOf(name);
  return i >= 0 && i + 1 < args.length ? args[i + 1] : fallback;
}
const host = flag('--host', '127.0.0.1');
const port = Number(flag('--port', '0'));
const MAX_BODY = 65_536;
const POLL_RING = 1_000;
const MAX_UNSENT = 1024 * 1024;
const epoch = randomUUID().slice(0, 8);

/** channel name → { offset, ws: Set<socket>, sse: Set<res>, polls: Set<waiter>, ring: event[] } */
const channels = new Map();
let published = 0;
let delivered = 0;
let connections = 0;
const started = Date.now();

function channelState(name) {
  let ch = channels.get(name);
  if (!ch) {
    ch = { offset: 0, ws: new Set(), sse: new Set(), polls: new Set(), ring: [] };
    channels.set(name, ch);
  }
  return ch;
}

// herald's cursor format (src/protocol/cursor.ts): base64url of [1, [[channel, epoch, offset], …]].
function encodeCursor(entries) {
  return Buffer.from(JSON.stringify([1, entries])).toString('base64url');
}
function decodeCursor(text) {
  try {
    const raw = JSON.parse(Buffer.from(text, 'base64url').toString('utf8'));
    if (!Array.isArray(raw) || raw[0] !== 1 || !Array.isArray(raw[1])) return undefined;
    return new Map(raw[1].map(([c, e, o]) => [c, { epoch: e, offset: o }]));
  } catch {
    return undefined;
  }
}

function publish(channel, data) {
  const ch = channelState(channel);
  const event = { channel, offset: ++ch.offset, epoch, id: randomUUID(), timestamp: Date.now(), data };
  published++;
  if (ch.ws.size > 0) {
    // Framed once; the same bytes go to every socket.
    const frame = Buffer.concat(Sender.frame(Buffer.from(JSON.stringify({ push: 'event', event })), {
      fin: true, opcode: 1, mask: false, readOnly: false, rsv1: false,
    }));
    for (const ws of ch.ws) {
      if (ws._socket.writableLength > MAX_UNSENT) {
        ch.ws.delete(ws);
        ws.close(4008, 'slow consumer');
        setTimeout(() => ws.terminate(), 5_000).unref();
        continue;
      }
      ws._socket.write(frame);
      delivered++;
    }
  }
  const json = JSON.stringify(event);
  if (ch.sse.size > 0) {
    const text = `id: ${encodeCursor([[channel, epoch, event.offset]])}\nevent: event\ndata: ${json}\n\n`;
    for (const res of ch.sse) res.write(text);
    delivered += ch.sse.size;
  }
  ch.ring.push(event);
  if (ch.ring.length > POLL_RING) ch.ring.shift();
  if (ch.polls.size > 0) {
    const body = `{"events":[${json}],"cursor":"${encodeCursor([[channel, epoch, event.offset]])}","recovered":true}`;
    for (const waiter of ch.polls) waiter.answer(body);
    delivered += ch.polls.size;
    ch.polls.clear();
  }
  return { channel, epoch, offset: event.offset, id: event.id, timestamp: event.timestamp };
}

function sendJson(res, status, body) {
  const text = JSON.stringify(body);
  res.writeHead(status, { 'content-type': 'application/json; charset=utf-8', 'content-length': Buffer.byteLength(text) });
  res.end(text);
}

function readJson(req, res, then) {
  const chunks = [];
  let size = 0;
  req.on('data', (c) => {
    size += c.length;
    if (size <= MAX_BODY) chunks.push(c);
  });
  req.on('end', () => {
    if (size > MAX_BODY) return sendJson(res, 413, { error: { code: 'too_large', message: 'body too large' } });
    let body;
    try {
      body = JSON.parse(Buffer.concat(chunks).toString('utf8'));
    } catch {
      return sendJson(res, 400, { error: { code: 'bad_request', message: 'body is not valid JSON' } });
    }
    then(body);
  });
}

const server = createServer((req, res) => {
  const url = new URL(req.url ?? '/', 'http://x');
  if (req.method === 'POST' && url.pathname === '/api/publish') {
    readJson(req, res, (body) => {
      if (!body || typeof body.channel !== 'string' || !('data' in body)) {
        return sendJson(res, 400, { error: { code: 'bad_request', message: 'channel and data are required' } });
      }
      sendJson(res, 200, publish(body.channel, body.data));
    });
    return;
  }
  if (req.method === 'GET' && url.pathname === '/api/stats') {
    let subscriptions = 0;
    for (const ch of channels.values()) subscriptions += ch.ws.size + ch.sse.size + ch.polls.size;
    sendJson(res, 200, { connections, subscriptions, channels: channels.size, published, delivered, uptime: Math.floor((Date.now() - started) / 1000) });
    return;
  }
  if (req.method === 'GET' && url.pathname === '/sse') {
    const names = url.searchParams.getAll('channel');
    if (names.length !== 1) return sendJson(res, 400, { error: { code: 'bad_request', message: 'one channel' } });
    const ch = channelState(names[0]);
    res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-store' });
    const cursor = encodeCursor([[names[0], epoch, ch.offset]]);
    res.write(`retry: 3000\n\nid: ${cursor}\nevent: ready\ndata: {"cursor":"${cursor}","recovered":false}\n\n`);
    ch.sse.add(res);
    connections++;
    res.on('close', () => {
      ch.sse.delete(res);
      connections--;
    });
    return;
  }
  if (req.method === 'GET' && url.pathname === '/poll') {
    const names = url.searchParams.getAll('channel');
    if (names.length !== 1) return sendJson(res, 400, { error: { code: 'bad_request', message: 'one channel' } });
    const name = names[0];
    const ch = channelState(name);
    const cursorText = url.searchParams.get('cursor');
    const timeout = Math.min(110, Math.max(1, Number(url.searchParams.get('timeout') ?? 30) || 30));
    let after = ch.offset;
    if (cursorText) {
      const pos = decodeCursor(cursorText)?.get(name);
      if (!pos) return sendJson(res, 400, { error: { code: 'bad_request', message: 'bad cursor' } });
      after = pos.offset;
    }
    if (after < ch.offset) {
      const events = ch.ring.filter((e) => e.offset > after);
      const recovered = events.length > 0 && events[0].offset === after + 1;
      sendJson(res, 200, { events, cursor: encodeCursor([[name, epoch, ch.offset]]), recovered });
      return;
    }
    const waiter = {
      timer: setTimeout(() => {
        ch.polls.delete(waiter);
        sendJson(res, 200, { events: [], cursor: encodeCursor([[name, epoch, after]]), recovered: true });
      }, timeout * 1000),
      answer(body) {
        clearTimeout(waiter.timer);
        res.writeHead(200, { 'content-type': 'application/json; charset=utf-8', 'content-length': Buffer.byteLength(body) });
        res.end(body);
      },
    };
    ch.polls.add(waiter);
    res.on('close', () => {
      clearTimeout(waiter.timer);
      ch.polls.delete(waiter);
    });
    return;
  }
  sendJson(res, 404, { error: { code: 'not_found', message: 'not found' } });
});
server.keepAliveTimeout = 60_000;

const wss = new WebSocketServer({ noServer: true, perMessageDeflate: false, maxPayload: MAX_BODY });
server.on('upgrade', (req, socket, head) => {
  if (!req.url || !req.url.startsWith('/ws')) {
    socket.destroy();
    return;
  }
  wss.handleUpgrade(req, socket, head, (ws) => {
    connections++;
    const subscribed = new Set();
    ws.on('message', (raw) => {
      let cmd;
      try {
        cmd = JSON.parse(raw.toString());
      } catch {
        ws.send('{"error":{"code":"bad_request","message":"not JSON"}}');
        return;
      }
      if (cmd.op === 'connect') {
        ws.send(JSON.stringify({ id: cmd.id, result: { client: randomUUID(), version: 1, ping: 25 } }));
      } else if (cmd.op === 'subscribe' && typeof cmd.channel === 'string') {
        const ch = channelState(cmd.channel);
        ch.ws.add(ws);
        subscribed.add(ch);
        ws.send(JSON.stringify({ id: cmd.id, result: { channel: cmd.channel, epoch, offset: ch.offset, recovered: false, events: [] } }));
      } else {
        ws.send(JSON.stringify({ id: cmd.id, error: { code: 'bad_request', message: 'the baseline knows connect and subscribe only' } }));
      }
    });
    ws.on('close', () => {
      connections--;
      for (const ch of subscribed) ch.ws.delete(ws);
    });
    ws.on('error', () => {});
  });
});

server.listen(port, host, () => {
  const addr = server.address();
  const shown = addr.family === 'IPv6' ? `[${addr.address}]` : addr.address;
  process.stdout.write(`listening on http://${shown}:${addr.port}\n`);
});

function shutdown() {
  for (const ws of wss.clients) ws.terminate();
  for (const ch of channels.values()) {
    for (const res of ch.sse) res.end();
    for (const w of ch.polls) w.answer('{"events":[],"cursor":"","recovered":true}');
  }
  server.close(() => process.exit(0));
  server.closeAllConnections?.();
  setTimeout(() => process.exit(0), 1_000).unref();
}
process.on('SIGTERM', shutdown);
process.on('SIGINT', shutdown);
