import type { Emitter } from '../../src/client/emitter.js';

/** Small helpers for the client suites: wait for a condition or an emitter event, with a bound. */
export async function waitFor(what: string, check: () => boolean, timeoutMs = 5_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

/** Resolves with the first argument of the next `name` event. */
export function next<E extends { [K in keyof E]: unknown[] }, K extends keyof E>(emitter: Emitter<E>, name: K, timeoutMs = 5_000): Promise<E[K][0]> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      off();
      reject(new Error(`timed out after ${timeoutMs} ms waiting for "${String(name)}"`));
    }, timeoutMs);
    const off = emitter.on(name, (...args) => {
      clearTimeout(timer);
      off();
      resolve(args[0]);
    });
  });
}
