/**
 * A fixed-size latency histogram in microseconds, HDR style: values below 128 µs are exact,
 * above that every power of two is split into 64 buckets (relative error under 1.6%).
 * Constant memory whatever the number of samples, mergeable across processes.
 */
const EXACT = 128;
const SUB_BITS = 6;
const SUB = 1 << SUB_BITS;
/** Values are clamped to 2^31 - 1 µs (about 35 minutes). */
const MAX_VALUE = 0x7fffffff;
const BUCKETS = EXACT + (31 - 7) * SUB;

function bucketOf(v: number): number {
  if (v < EXACT) return v;
  const e = 31 - Math.clz32(v);
  return EXACT + (e - 7) * SUB + ((v >>> (e - SUB_BITS)) & (SUB - 1));
}

/** The middle of a bucket, as the value reported for it. */
function valueOf(bucket: number): number {
  if (bucket < EXACT) return bucket;
  const i = bucket - EXACT;
  const e = Math.floor(i / SUB) + 7;
  const low = (SUB + (i % SUB)) * 2 ** (e - SUB_BITS);
  const width = 2 ** (e - SUB_BITS);
  return low + width / 2;
}

/** Serialisable form: sparse `[bucket, count]` pairs plus the exact extremes. */
export interface HistogramData {
  buckets: [number, number][];
  count: number;
  sum: number;
  min: number;
  max: number;
}

export interface LatencySummary {
  count: number;
  /** Milliseconds. */
  mean: number;
  p50: number;
  p90: number;
  p99: number;
  max: number;
}

export class Histogram {
  private counts = new Float64Array(BUCKETS);
  count = 0;
  sum = 0;
  min = Infinity;
  max = 0;

  /** Records one value in microseconds (negative values count as 0). */
  record(us: number): void {
    const v = us <= 0 ? 0 : us >= MAX_VALUE ? MAX_VALUE : Math.round(us);
    this.counts[bucketOf(v)]!++;
    this.count++;
    this.sum += v;
    if (v < this.min) this.min = v;
    if (v > this.max) this.max = v;
  }

  /** The value at quantile `q` (0..1) in microseconds; 0 when empty. */
  quantile(q: number): number {
    if (this.count === 0) return 0;
    if (q >= 1) return this.max;
    const rank = Math.max(1, Math.ceil(q * this.count));
    let seen = 0;
    for (let b = 0; b < BUCKETS; b++) {
      seen += this.counts[b]!;
      if (seen >= rank) return Math.min(Math.max(valueOf(b), this.min), this.max);
    }
    return this.max;
  }

  summary(): LatencySummary {
    const ms = (us: number): number => Math.round(us) / 1000;
    return {
      count: this.count,
      mean: this.count === 0 ? 0 : ms(this.sum / this.count),
      p50: ms(this.quantile(0.5)),
      p90: ms(this.quantile(0.9)),
      p99: ms(this.quantile(0.99)),
      max: ms(this.max),
    };
  }

  toJSON(): HistogramData {
    const buckets: [number, number][] = [];
    for (let b = 0; b < BUCKETS; b++) if (this.counts[b]! > 0) buckets.push([b, this.counts[b]!]);
    return { buckets, count: this.count, sum: this.sum, min: this.count === 0 ? 0 : this.min, max: this.max };
  }

  merge(data: HistogramData): void {
    if (data.count === 0) return;
    for (const [b, n] of data.buckets) if (b >= 0 && b < BUCKETS) this.counts[b]! += n;
    this.count += data.count;
    this.sum += data.sum;
    if (data.min < this.min) this.min = data.min;
    if (data.max > this.max) this.max = data.max;
  }
}
