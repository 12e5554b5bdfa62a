/**
 * The demo chat in a real Chromium (playwright-core): public/chat.html served with the server's CSP,
 * the chat endpoints in demo mode. Several browser contexts are several people.
 *
 * Chromium missing: skipped with "install Chromium: apt-get install -y chromium", unless
 * HERALD_REQUIRE_BROWSER=1 (or HERALD_REQUIRE_BINARIES=1), which makes it fail instead.
 * Also writes docs/img/chat-demo.png, the screenshot in docs/chat.md.
 */
import assert from 'node:assert/strict';
import { mkdirSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { after, before, describe, it } from 'node:test';
import { chromium as playwright, type Browser, type BrowserContext, type Page } from 'playwright-core';
import { requireBinary } from '../helpers/require-binary.js';
import { eventually, startChat, type ChatHarness } from './helpers.js';

const chromiumPath = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';
const chromium = requireBinary('Chromium', chromiumPath, 'apt-get install -y chromium', { env: 'HERALD_REQUIRE_BROWSER' });
const SCREENSHOT = fileURLToPath(new URL('../../docs/img/chat-demo.png', import.meta.url));
const XSS = '<img src=x onerror="window.__pwned=1">';

describe('browser: the demo chat in a real Chromium', { skip: chromium.skip, timeout: 120_000 }, () => {
  let browser: Browser | undefined;
  let h: ChatHarness;
  const problems: string[] = [];
  const contexts: BrowserContext[] = [];

  before(async () => {
    if (!chromium.available) throw new Error(chromium.failure);
    h = await startChat({ page: true, endpoints: { demo: true } });
    browser = await playwright.launch({
      executablePath: chromiumPath,
      args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
      timeout: 30_000,
    });
  });

  after(async () => {
    await browser?.close();
    await h?.close();
  });

  /** A person: their own browser context (own sessionStorage), a page on the demo. */
  async function person(init?: () => void): Promise<Page> {
    const context = await browser!.newContext({ viewport: { width: 1000, height: 640 } });
    contexts.push(context);
    if (init) await context.addInitScript(init);
    const page = await context.newPage();
    page.setDefaultTimeout(10_000);
    page.on('pageerror', (err) => problems.push(`page error: ${String(err)}`));
    page.on('console', (msg) => {
      if (msg.type() === 'error' && !/status of 409|Failed to load resource/.test(msg.text())) problems.push(`console: ${msg.text()}`);
    });
    await page.goto(`${h.base}/`);
    return page;
  }

  async function join(page: Page, name: string, room: string): Promise<void> {
    await page.getByLabel('Your name', { exact: true }).fill(name);
    await page.getByLabel('Room', { exact: true }).fill(room);
    await page.getByRole('button', { name: 'Join' }).click();
    await page.locator('#status').filter({ hasText: 'Connected' }).waitFor();
  }

  async function say(page: Page, text: string): Promise<void> {
    await page.getByLabel('Message', { exact: true }).fill(text);
    await page.getByLabel('Message', { exact: true }).press('Enter');
  }

  function message(page: Page, text: string, type?: 'message' | 'system' | 'whisper') {
    return page.locator(type ? `#messages li[data-type="${type}"]` : '#messages li').filter({ hasText: text });
  }

  async function users(page: Page): Promise<string[]> {
    return page.locator('#users button').allTextContents();
  }

  it('people chat, whisper, see who is there, meet a taken name, reload, and are never injected HTML', async () => {
    const alice = await person();
    await join(alice, 'alice', 'lobby');
    assert.equal(await alice.locator('#status').textContent(), 'Connected (WebSocket)');
    await message(alice, 'alice joined', 'system').waitFor();
    assert.equal(await alice.locator('#room-title').textContent(), '#lobby');

    const bob = await person();
    await join(bob, 'bob', 'lobby');
    await message(alice, 'bob joined', 'system').waitFor();
    await eventually(async () => (await users(alice)).join() === 'alice (you),bob', 'alice to list bob');

    await say(bob, 'hello alice!');
    await message(alice, 'hello alice!', 'message').waitFor();
    assert.equal(await message(alice, 'hello alice!').locator('.from').textContent(), 'bob');
    await say(alice, 'hi bob, long time no see');
    await message(bob, 'hi bob, long time no see', 'message').waitFor();

    // User text is text: the markup shows as typed, nothing is parsed or run.
    await say(bob, XSS);
    const shown = message(alice, 'onerror', 'message').locator('.text');
    await shown.waitFor();
    assert.equal(await shown.textContent(), XSS);
    assert.equal(await alice.locator('#messages img').count(), 0);
    assert.equal(await alice.evaluate(() => (window as unknown as { __pwned?: number }).__pwned), undefined);

    // A whisper shows only to its target (and, as an echo, to its sender).
    const carol = await person();
    await join(carol, 'carol', 'lobby');
    await message(alice, 'carol joined').waitFor();
    await alice.locator('#users button', { hasText: 'bob' }).click();
    assert.equal(await alice.getByLabel('Message', { exact: true }).inputValue(), '/w bob ');
    await alice.getByLabel('Message', { exact: true }).pressSequentially('the cake is a lie');
    await alice.getByLabel('Message', { exact: true }).press('Enter');
    const whisper = message(bob, 'the cake is a lie', 'whisper');
    await whisper.waitFor();
    assert.equal(await whisper.locator('.from').textContent(), 'whisper from alice');
    assert.equal(await message(alice, 'the cake is a lie', 'whisper').locator('.from').textContent(), 'whisper to bob');
    await say(alice, 'cake for everyone?');
    await message(carol, 'cake for everyone?').waitFor();
    assert.equal(await message(carol, 'the cake is a lie').count(), 0);

    // /users answers the one who asked.
    await say(carol, '/users');
    await message(carol, 'users: alice, bob, carol', 'system').waitFor();
    await eventually(async () => (await users(carol)).length === 3, 'carol to list three');

    // A second "alice" is told the name is taken.
    const impostor = await person();
    await impostor.getByLabel('Your name', { exact: true }).fill('alice');
    await impostor.getByLabel('Room', { exact: true }).fill('lobby');
    await impostor.getByRole('button', { name: 'Join' }).click();
    const error = impostor.locator('#join-error');
    await error.filter({ hasText: 'taken' }).waitFor();
    assert.equal(await error.textContent(), 'The name "alice" is already taken in room "lobby". Choose another name.');
    assert.equal(await impostor.locator('#chat-view').isHidden(), true);

    await alice.mouse.move(0, 0);
    await alice.screenshot({ path: await screenshotPath() });

    // A reload rejoins by itself and shows the recent history.
    await bob.reload();
    await bob.locator('#status').filter({ hasText: 'Connected' }).waitFor();
    await message(bob, 'hi bob, long time no see', 'message').waitFor();
    await message(bob, 'cake for everyone?', 'message').waitFor();
    assert.equal(await message(bob, 'onerror').locator('.text').textContent(), XSS);
    assert.equal(await message(bob, 'the cake is a lie').count(), 0, 'whispers are not in the room history');
    await message(alice, 'bob left', 'system').waitFor();

    // Leaving is seen by the others.
    await carol.getByRole('button', { name: 'Leave room' }).click();
    await carol.locator('#join-view').waitFor();
    await message(alice, 'carol left', 'system').waitFor();
    await eventually(async () => !(await users(alice)).includes('carol'), 'carol gone from the list');

    // Dropped by the server: the page comes back and shows what it missed.
    const info = (await h.hub.presence('chat:lobby')).find((c) => c.user === 'alice');
    assert.ok(info);
    assert.equal(h.hub.disconnectClient(info.client), true);
    await h.chat.room('lobby')!.broadcast('said while alice was away', 'bob');
    await alice.locator('#messages li.msg-local').filter({ hasText: 'Connection lost' }).waitFor();
    await message(alice, 'said while alice was away', 'message').waitFor();
    await alice.locator('#messages li.msg-local').filter({ hasText: /Reconnected: \d+ missed messages? shown above/ }).waitFor();
    assert.equal(await message(alice, 'hello alice!').count(), 1, 'the replay does not repeat what was shown');
    assert.deepEqual(problems, []);
  });

  it('chats over SSE + POST when the page has no WebSocket, and falls back when WebSocket is blocked', async () => {
    const watcher = await person();
    await join(watcher, 'watcher', 'sse-room');

    const noWs = await person(() => {
      delete (window as unknown as { WebSocket?: unknown }).WebSocket;
    });
    await join(noWs, 'no-ws', 'sse-room');
    assert.equal(await noWs.locator('#status').textContent(), 'Connected (SSE)');
    await message(watcher, 'no-ws joined').waitFor();
    await say(noWs, 'hello over SSE');
    await message(watcher, 'hello over SSE', 'message').waitFor();
    await say(watcher, 'hello back');
    await message(noWs, 'hello back', 'message').waitFor();
    await say(noWs, '/w watcher psst');
    await message(watcher, 'psst', 'whisper').waitFor();

    const blocked = await person(() => {
      // A WebSocket that never opens, as behind a proxy that refuses upgrades.
      (window as unknown as { WebSocket: unknown }).WebSocket = class {
        onclose: ((e: { code: number; reason: string }) => void) | null = null;
        constructor() {
          setTimeout(() => this.onclose?.({ code: 1006, reason: '' }), 20);
        }
        send(): void {}
        close(): void {}
      };
    });
    await join(blocked, 'blocked', 'sse-room');
    assert.equal(await blocked.locator('#status').textContent(), 'Connected (SSE)');
    await say(blocked, 'made it anyway');
    await message(watcher, 'made it anyway').waitFor();

    await noWs.getByRole('button', { name: 'Leave room' }).click();
    await message(watcher, 'no-ws left', 'system').waitFor();
    assert.deepEqual(problems, []);
  });
});

async function screenshotPath(): Promise<string> {
  mkdirSync(new URL('../../docs/img/', import.meta.url), { recursive: true });
  return SCREENSHOT;
}
