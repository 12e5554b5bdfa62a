/**
 * What the browser suites share: the Chromium check (skip or fail, see test/helpers/require-binary.ts),
 * the launch flags, and the built bundle's location.
 *
 * Chromium missing: a suite is skipped with "install Chromium: apt-get install -y chromium", unless
 * HERALD_REQUIRE_BROWSER=1 (or HERALD_REQUIRE_BINARIES=1), which makes it fail instead.
 */
import { existsSync } from 'node:fs';
import { chromium as playwright, type Browser, type Page } from 'playwright-core';
import { requireBinary } from '../helpers/require-binary.js';

export const chromiumPath = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';
export const chromium = requireBinary('Chromium', chromiumPath, 'apt-get install -y chromium', { env: 'HERALD_REQUIRE_BROWSER' });
export const BUNDLE = new URL('../../dist/browser/herald.js', import.meta.url);

/** Throws the suite's failure when Chromium is required but missing, or the bundle is not built. */
export function assertBrowserReady(needsBundle: boolean): void {
  if (!chromium.available) throw new Error(chromium.failure);
  if (needsBundle && !existsSync(BUNDLE)) throw new Error('dist/browser/herald.js is missing: run `npm run build` (npm test does) before this suite');
}

export function launchChromium(): Promise<Browser> {
  return playwright.launch({
    executablePath: chromiumPath,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
    timeout: 30_000,
  });
}

/** A page with a 10 s default timeout whose uncaught errors land in `errors`. */
export async function newPage(browser: Browser, errors: string[]): Promise<Page> {
  const page = await browser.newPage();
  page.setDefaultTimeout(10_000);
  page.on('pageerror', (err) => errors.push(String(err)));
  return page;
}
