/** UUID v7 (RFC 9562): 48-bit millisecond timestamp, then random bits. Monotonic within a process. */
const bytes = new Uint8Array(16);
// Random bytes are drawn 4 KiB at a time: one getRandomValues call per id cost ~30% of a publish.
const pool = new Uint8Array(4096);
let poolAt = pool.length;

function fillRandom(target: Uint8Array, from: number, count: number): void {
  if (poolAt + count > pool.length) {
    crypto.getRandomValues(pool);
    poolAt = 0;
  }
  for (let i = 0; i < count; i++) target[from + i] = pool[poolAt++]!;
}
const hex: string[] = [];
for (let i = 0; i < 256; i++) hex.push((i + 0x100).toString(16).slice(1));

let lastMs = 0;
let seq = 0;

export function uuidv7(now: number = Date.now()): string {
  fillRandom(bytes, 6, 10);
  // 12-bit counter in rand_a keeps ids ordered for events in the same millisecond.
  if (now <= lastMs) {
    now = lastMs;
    seq = (seq + 1) & 0xfff;
    if (seq === 0) now = ++lastMs;
  } else {
    lastMs = now;
    seq = bytes[6]! & 0x07; // random start, room to count up
  }
  bytes[0] = (now / 2 ** 40) & 0xff;
  bytes[1] = (now / 2 ** 32) & 0xff;
  bytes[2] = (now >>> 24) & 0xff;
  bytes[3] = (now >>> 16) & 0xff;
  bytes[4] = (now >>> 8) & 0xff;
  bytes[5] = now & 0xff;
  bytes[6] = 0x70 | ((seq >>> 8) & 0x0f);
  bytes[7] = seq & 0xff;
  bytes[8] = (bytes[8]! & 0x3f) | 0x80;
  let out = '';
  for (let i = 0; i < 16; i++) {
    out += hex[bytes[i]!]!;
    if (i === 3 || i === 5 || i === 7 || i === 9) out += '-';
  }
  return out;
}

/** A short random id (epochs, client ids), from the same pool: ids are made per connection and per poll. */
export function randomId(length = 12): string {
  const alphabet = '0123456789abcdefghijklmnopqrstuvwxyz';
  let out = '';
  while (out.length < length) {
    if (poolAt >= pool.length) {
      crypto.getRandomValues(pool);
      poolAt = 0;
    }
    const byte = pool[poolAt++]!;
    // 252 = 7 × 36: bytes above it are skipped so every character is equally likely.
    if (byte < 252) out += alphabet[byte % 36];
  }
  return out;
}
