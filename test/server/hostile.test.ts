/** The server keeps serving after hostile input: huge bodies, garbage bytes, slow requests, deep JSON. */
import assert from 'node:assert/strict';
import { request as httpRequest } from 'node:http';
import { connect } from 'node:net';
import { after, before, describe, test } from 'node:test';
import { startServer, type HeraldServer } from '../../src/server/index.js';
import { assertError, call, raw } from './helpers.js';

let srv: HeraldServer;
let base: string;
before(async () => {
  srv = await startServer({ port: 0 });
  base = srv.url;
});
after(() => srv.close());

async function stillServing(): Promise<void> {
  const answer = await call(base, 'GET', '/healthz');
  assert.equal(answer.status, 200);
  const published = await call(base, 'POST', '/api/publish', { json: { channel: 'after', data: 1 } });
  assert.equal(published.status, 200);
}

/** Sends a 10 MB body (with a content-length, or chunked) and resolves with the status the server answered. */
function hugeBody(chunked: boolean): Promise<{ status: number; body: string }> {
  const url = new URL('/api/publish', base);
  const size = 10 * 1024 * 1024;
  const headers: Record<string, string | number> = { 'content-type': 'application/json' };
  if (!chunked) headers['content-length'] = size;
  return new Promise((resolve, reject) => {
    const req = httpRequest(url, { method: 'POST', headers }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString() }));
    });
    // The server may answer and stop reading before the upload ends: that is the point.
    req.on('error', (err: NodeJS.ErrnoException) => (err.code === 'EPIPE' || err.code === 'ECONNRESET' ? undefined : reject(err)));
    const chunk = Buffer.alloc(64 * 1024, 0x61);
    let sent = 0;
    const pump = (): void => {
      while (sent < size) {
        sent += chunk.length;
        if (!req.write(chunk)) {
          req.once('drain', pump);
          return;
        }
      }
      req.end();
    };
    pump();
  });
}

describe('hostile input', () => {
  test('a 10 MB body with a content-length is 413 too_large, and the server keeps serving', async () => {
    const answer = await hugeBody(false);
    assert.equal(answer.status, 413);
    assert.equal(JSON.parse(answer.body).error.code, 'too_large');
    await stillServing();
  });

  test('a 10 MB chunked body is 413 too_large, and the server keeps serving', async () => {
    const answer = await hugeBody(true);
    assert.equal(answer.status, 413);
    assert.equal(JSON.parse(answer.body).error.code, 'too_large');
    await stillServing();
  });

  test('garbage bytes get 400 and a closed connection', async () => {
    const text = await raw(base, (s) => s.end(Buffer.from([0x00, 0xff, 0x13, 0x37, 0x0d, 0x0a, 0x0d, 0x0a, 0xde, 0xad])));
    assert.match(text, /^HTTP\/1\.1 400 Bad Request/);
    await stillServing();
  });

  test('an absolute-form request target is 400 bad_request', async () => {
    const text = await raw(base, (s) => s.write('GET http://elsewhere/healthz HTTP/1.1\r\nHost: elsewhere\r\nConnection: close\r\n\r\n'));
    assert.match(text, /^HTTP\/1\.1 400 /);
    assert.match(text, /"code":"bad_request"/);
  });

  test('headers over the size limit get 431', async () => {
    const text = await raw(base, (s) => s.write(`GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: ${'a'.repeat(70_000)}\r\n\r\n`));
    assert.match(text, /^HTTP\/1\.1 431 /);
    await stillServing();
  });

  test('JSON nested deeper than the parser allows is 400 bad_request', async () => {
    const deep = `{"channel":"c","data":${'['.repeat(10_000)}${']'.repeat(10_000)}}`;
    assertError(await call(base, 'POST', '/api/publish', { body: deep, headers: { 'content-type': 'application/json' } }), 400, 'bad_request');
    await stillServing();
  });

  test('invalid UTF-8 in a body is refused or replaced, never a crash', async () => {
    const body = Buffer.concat([Buffer.from('{"channel":"utf","data":"'), Buffer.from([0xc3, 0x28, 0xff]), Buffer.from('"}')]);
    const answer = await call(base, 'POST', '/api/publish', { body, headers: { 'content-type': 'application/json' } });
    assert.ok(answer.status === 200 || answer.status === 400, `status ${answer.status}`);
    await stillServing();
  });

  test('a request whose headers never finish is cut off with 408, while others are served', async () => {
    // Tighten the bound for the test (the default is HEADERS_TIMEOUT_MS); node checks it every second.
    const { headersTimeout, requestTimeout } = srv.http;
    srv.http.headersTimeout = 1_000;
    srv.http.requestTimeout = 1_000;
    try {
      const url = new URL(base);
      const started = Date.now();
      const cut = new Promise<string>((resolve) => {
        const socket = connect(Number(url.port), url.hostname, () => socket.write('GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: '));
        let text = '';
        socket.on('data', (c) => (text += c.toString('latin1')));
        socket.on('error', () => {});
        socket.on('close', () => resolve(text));
      });
      await stillServing();
      const text = await cut;
      assert.match(text, /^HTTP\/1\.1 408 /);
      assert.ok(Date.now() - started < 5_000, 'cut off within the bound');
    } finally {
      srv.http.headersTimeout = headersTimeout;
      srv.http.requestTimeout = requestTimeout;
    }
  });

  test('the production bounds on slow requests are set', () => {
    assert.equal(srv.http.headersTimeout, 10_000);
    assert.equal(srv.http.requestTimeout, 30_000);
  });
});
