/** Small helpers for benchmarks: bounded timing loops and medians. Figures are for notes, never assertions. */
import { PerformanceObserver } from 'node:perf_hooks';

/** Runs `fn` in batches for about `ms` milliseconds; returns operations per second. */
export function opsPerSecond(fn: () => void, ms = 400, batch = 200): number {
  for (let i = 0; i < batch; i++) fn(); // warm up
  let ops = 0;
  const start = process.hrtime.bigint();
  const budget = BigInt(ms) * 1_000_000n;
  let elapsed = 0n;
  // Bounded by time and by a hard count, so a pathological case still ends.
  while (elapsed < budget && ops < 50_000_000) {
    for (let i = 0; i < batch; i++) fn();
    ops += batch;
    elapsed = process.hrtime.bigint() - start;
  }
  return ops / (Number(elapsed) / 1e9);
}

export function median(xs: number[]): number {
  const s = xs.slice().sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)] as number;
}

/** Interleaves the candidates `rounds` times (so machine noise hits all alike) and returns medians. */
export function compare(candidates: Record<string, () => void>, rounds = 5, ms = 300): Record<string, number> {
  const samples: Record<string, number[]> = {};
  for (let r = 0; r < rounds; r++) {
    for (const [name, fn] of Object.entries(candidates)) (samples[name] ??= []).push(opsPerSecond(fn, ms));
  }
  return Object.fromEntries(Object.entries(samples).map(([k, v]) => [k, median(v)]));
}

/** Counts garbage collections while `fn` runs, so an allocation figure can say if GC blurred it. */
export function withGcCount<T>(fn: () => T): { result: T; gcs: number } {
  let gcs = 0;
  const obs = new PerformanceObserver((list) => {
    gcs += list.getEntries().length;
  });
  obs.observe({ entryTypes: ['gc'] });
  const result = fn();
  obs.disconnect();
  return { result, gcs };
}

export function fmt(n: number, digits = 0): string {
  return n.toLocaleString('en-US', { maximumFractionDigits: digits, minimumFractionDigits: digits });
}

export function table(rows: (string | number)[][]): string {
  const cells = rows.map((r) => r.map(String));
  const widths = (cells[0] ?? []).map((_, i) => Math.max(...cells.map((r) => (r[i] ?? '').length)));
  return cells.map((r) => r.map((c, i) => (i === 0 ? c.padEnd(widths[i] ?? 0) : c.padStart(widths[i] ?? 0))).join('  ')).join('\n');
}
