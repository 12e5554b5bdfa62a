import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { LoadPacer, PACE_SAMPLE_MS } from './pacer.js';

/** The pace after each of `n` readings of `utilization`. */
function paces(p: LoadPacer, utilization: number, n: number): number[] {
  const out: number[] = [];
  for (let i = 0; i < n; i++) {
    p.update(utilization);
    out.push(p.paceMs);
  }
  return out;
}

describe('LoadPacer', () => {
  it('is 0 while the loop is idle, steps up to the most while busy, holds in the band, and steps back down to 0', () => {
    const p = new LoadPacer(250, 50);
    assert.equal(p.paceMs, 0);
    p.update(0.1);
    assert.equal(p.paceMs, 0, 'idle: no pacing');
    assert.deepEqual(paces(p, 0.9, 5), [62, 124, 248, 250, 250], 'a quarter of the most, doubling, capped');
    p.update(0.4);
    assert.equal(p.paceMs, 250, 'between half the threshold and it: held');
    assert.deepEqual(paces(p, 0.1, 3), [125, 62, 0], 'halving, to 0 below a quarter of the most');
  });

  it('paces always at the most with a load threshold of 0, never with a most of 0, and refuses bad settings', () => {
    const always = new LoadPacer(300, 0);
    assert.equal(always.paceMs, 300);
    always.update(0);
    always.start();
    always.stop();
    assert.equal(always.paceMs, 300, 'not adaptive: nothing changes it');
    const never = new LoadPacer(0, 50);
    never.update(1);
    assert.equal(never.paceMs, 0);
    assert.equal(never.adaptive, false);
    assert.throws(() => new LoadPacer(-1, 50), /non-negative integer/);
    assert.throws(() => new LoadPacer(1.5, 50), /non-negative integer/);
    assert.throws(() => new LoadPacer(250, 101), /percentage/);
    assert.throws(() => new LoadPacer(250, Number.NaN), /percentage/);
  });

  it("reads the real event loop: a busy loop raises the pace, an idle one brings it back to 0, stop() resets it", async () => {
    const p = new LoadPacer(200, 50);
    p.start();
    try {
      // Keep the loop busy (≈ 95% utilisation) in short slices, so the sampling timer still runs.
      const deadline = Date.now() + 20 * PACE_SAMPLE_MS;
      while (p.paceMs < 200 && Date.now() < deadline) {
        const until = Date.now() + 19;
        while (Date.now() < until) {
          // spin
        }
        await new Promise((resolve) => setTimeout(resolve, 1));
      }
      assert.equal(p.paceMs, 200, 'a busy loop paces at the most');
      // Idle: the loop only checks the pace now and then, until the samples bring it down.
      const idleDeadline = Date.now() + 20 * PACE_SAMPLE_MS;
      while (p.paceMs > 0 && Date.now() < idleDeadline) await new Promise((resolve) => setTimeout(resolve, 10));
      assert.equal(p.paceMs, 0, 'an idle loop does not pace');
      for (let i = 0; i < 8; i++) p.update(1);
      p.stop();
      assert.equal(p.paceMs, 0, 'stopped: starts again from 0');
    } finally {
      p.stop();
    }
  });
});
