/**
 * Fixed-bucket histograms of durations the core measures itself (probe round trips, push-pull
 * exchanges). The core has no clock: each duration is the difference of two `now`s it was
 * given. Buckets are fixed at construction and an observation allocates nothing, so the core
 * can count every probe. Exporters (the HTTP API's /metrics, the simulator) read the buckets as
 * they are; the core keeps no percentiles and forgets nothing.
 */

/**
 * Bucket upper bounds for network round trips, in ms: loopback (well under 1 ms) through a LAN
 * (memberlist's LAN probe timeout is 500 ms) to a WAN (its WAN probe timeout is 3 s) and a
 * member whose health score stretched its timeouts. Steps of 1, 2.5, 5 per decade, as
 * Prometheus client libraries' default buckets.
 */
export const ROUND_TRIP_BOUNDS_MS: readonly number[] = Object.freeze([
  0.25, 0.5, 1, 2.5, 5, 10, 25, 50, 100, 250, 500, 1_000, 2_500, 5_000, 10_000,
]);

/** What readers of a histogram see (`Membership.stats`). */
export interface HistogramView {
  /** Upper bounds of the buckets, increasing; an observation lands in the first bound it does not exceed. */
  readonly boundsMs: readonly number[];
  /**
   * Observations per bucket, not cumulative: `counts[i]` are those above `boundsMs[i - 1]` and
   * at most `boundsMs[i]`; the last entry (index `boundsMs.length`) those above every bound.
   */
  readonly counts: ArrayLike<number>;
  /** The sum of the observations in each bucket, in ms (so an exporter can replay them exactly). */
  readonly sumsMs: ArrayLike<number>;
  readonly count: number;
  readonly sumMs: number;
}

export class Histogram implements HistogramView {
  readonly counts: Float64Array;
  readonly sumsMs: Float64Array;
  count = 0;
  sumMs = 0;

  constructor(readonly boundsMs: readonly number[]) {
    for (let i = 1; i < boundsMs.length; i++) {
      if (!((boundsMs[i] as number) > (boundsMs[i - 1] as number))) throw new RangeError('histogram bounds must increase');
    }
    // Float64 counts: exact up to 2^53, where 32-bit ones would wrap after 4e9 observations.
    this.counts = new Float64Array(boundsMs.length + 1);
    this.sumsMs = new Float64Array(boundsMs.length + 1);
  }

  /** Counts one duration. A negative or non-finite one (impossible from a monotonic `now`) is ignored. */
  observe(valueMs: number): void {
    if (!(valueMs >= 0) || valueMs === Number.POSITIVE_INFINITY) return;
    const bounds = this.boundsMs;
    let i = 0;
    while (i < bounds.length && valueMs > (bounds[i] as number)) i++;
    this.counts[i] = (this.counts[i] as number) + 1;
    this.sumsMs[i] = (this.sumsMs[i] as number) + valueMs;
    this.count++;
    this.sumMs += valueMs;
  }

  /** Plain arrays for JSON (the agent's `stats` command prints `gv.stats()`). */
  toJSON(): { boundsMs: number[]; counts: number[]; sumsMs: number[]; count: number; sumMs: number } {
    return { boundsMs: [...this.boundsMs], counts: Array.from(this.counts), sumsMs: Array.from(this.sumsMs), count: this.count, sumMs: this.sumMs };
  }
}
