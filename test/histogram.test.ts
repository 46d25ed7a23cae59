/**
 * The durations the core times itself (probe round trips, push-pulls) and the broadcast queue
 * depth: the fixed-bucket helper alone, then a simulated cluster on links of known latency,
 * whose every measurement must land where that latency puts it. Seeds are named; rerun with
 * the same seed to replay.
 */
import { describe, expect, test } from 'vitest';
import { Simulation } from '../sim/engine.js';
import { Histogram, type HistogramView, ROUND_TRIP_BOUNDS_MS } from '../src/core/histogram.js';

/** Index of the bucket an observation of `ms` belongs in. */
const bucketOf = (ms: number): number => {
  const i = ROUND_TRIP_BOUNDS_MS.findIndex((b) => ms <= b);
  return i < 0 ? ROUND_TRIP_BOUNDS_MS.length : i;
};

/** The buckets that hold observations. */
const used = (h: HistogramView): number[] => Array.from(h.counts).flatMap((n, i) => (n > 0 ? [i] : []));

describe('histogram', () => {
  test('an observation lands in the first bucket whose bound it does not exceed; sums and counts add up', () => {
    const h = new Histogram(ROUND_TRIP_BOUNDS_MS);
    for (const ms of [0, 0.1, 0.25, 0.26, 1, 499.9, 500, 500.1, 10_000, 10_001, 3_600_000]) h.observe(ms);
    expect(h.count).toBe(11);
    expect(h.sumMs).toBeCloseTo(3_600_000 + 10_001 + 10_000 + 500.1 + 500 + 499.9 + 1 + 0.26 + 0.25 + 0.1, 6);
    const at = (ms: number): number => h.counts[bucketOf(ms)] as number;
    expect(at(0.25)).toBe(3); // 0, 0.1 and 0.25 (bounds are inclusive, as Prometheus's le)
    expect(at(0.26)).toBe(1);
    expect(at(500)).toBe(2); // 499.9 and 500
    expect(at(500.1)).toBe(1);
    expect(h.counts[ROUND_TRIP_BOUNDS_MS.length]).toBe(2); // above 10 s
    expect(h.sumsMs[ROUND_TRIP_BOUNDS_MS.length]).toBe(3_610_001);
    expect(Array.from(h.counts).reduce((a, b) => a + b, 0)).toBe(h.count);
    // Impossible from a monotonic clock, and not counted.
    h.observe(-1);
    h.observe(Number.NaN);
    h.observe(Number.POSITIVE_INFINITY);
    expect(h.count).toBe(11);
    expect(JSON.parse(JSON.stringify(h))).toMatchObject({ boundsMs: [...ROUND_TRIP_BOUNDS_MS], count: 11 });
    expect(() => new Histogram([1, 1])).toThrow(RangeError);
  });

  test('the bounds reach from loopback to a WAN probe timeout stretched by poor health', () => {
    expect(ROUND_TRIP_BOUNDS_MS[0]).toBeLessThan(1);
    expect(ROUND_TRIP_BOUNDS_MS).toContain(500); // memberlist's LAN probe timeout
    expect(ROUND_TRIP_BOUNDS_MS.at(-1)).toBeGreaterThanOrEqual(3_000 * 3); // WAN probe timeout, score 2
  });
});

describe('the core times its probes and push-pulls (simulated)', () => {
  test('on 20 ms links every direct probe takes 40 ms and every push-pull 2 x (20 + 40) ms; the queue drains (seed 61)', () => {
    // Streams pay 40 ms more than datagrams each way, so the two land in different buckets.
    const h = new Simulation({ seed: 61, network: { latency: 20, streamExtraMs: 40 }, config: { profile: 'lan', pushPullIntervalMs: 5_000 } });
    h.startCluster(5);
    h.runFor(200);
    // Five joins are being gossiped.
    expect(h.liveNodes().some((n) => n.core.stats.broadcastQueueDepth > 0)).toBe(true);
    h.runFor(30_000);
    for (const n of h.liveNodes()) {
      const { probes, probesFailed, probeRttMs, pushPullMs, pushPulls, broadcastQueueDepth } = n.core.stats;
      // Every probe but the one in flight was acked directly, each timed.
      expect(probesFailed).toBe(0);
      expect(probeRttMs.count).toBeGreaterThanOrEqual(probes - 1);
      expect(probeRttMs.count).toBeGreaterThan(20);
      expect(used(probeRttMs)).toEqual([bucketOf(40)]);
      expect(probeRttMs.sumMs / probeRttMs.count).toBeCloseTo(40, 9);
      // Join and periodic push-pulls, each answered once (n0 joined nobody, so has fewer).
      expect(pushPullMs.count).toBeGreaterThan(2);
      expect(pushPullMs.count).toBeLessThanOrEqual(pushPulls + (n.name === 'n0' ? 0 : 1));
      expect(used(pushPullMs)).toEqual([bucketOf(120)]);
      expect(pushPullMs.sumMs / pushPullMs.count).toBeCloseTo(120, 9);
      expect(broadcastQueueDepth).toBe(0);
    }
  });

  test('probes answered only through a helper or after the timeout are not timed as round trips (seed 62)', () => {
    const h = new Simulation({ seed: 62, network: { latency: 1 }, config: { profile: 'lan' } });
    h.startCluster(3);
    h.runFor(5_000);
    // n0 hears nothing from n1 directly (one way): its pings of n1 reach n1, the acks never come back.
    h.partition(['n1'], ['n0'], true);
    const before = h.node('n0').core.stats.probeRttMs.count;
    const probesBefore = h.node('n0').core.stats.probes;
    h.runFor(20_000);
    const s = h.node('n0').core.stats;
    expect(s.probesFailed).toBeGreaterThan(0);
    // Only the direct probes of n2 were timed, at 2 ms each.
    expect(s.probeRttMs.count - before).toBeLessThanOrEqual(s.probes - probesBefore - s.probesFailed);
    expect(used(s.probeRttMs)).toEqual([bucketOf(2)]);
  });
});
