/** Runs one scenario to the end and returns what it measured, with the cost of running it. */
import { Simulation } from './engine.js';
import { InvariantChecker, type Violation } from './invariants.js';
import { Recorder, type RunMetrics } from './metrics.js';
import type { Scenario, ScenarioParams } from './scenarios/index.js';

export interface RunResult {
  scenario: string;
  label: string;
  params: ScenarioParams;
  metrics: RunMetrics;
  wallMs: number;
  events: number;
  eventsPerWallSecond: number;
  peakRssBytes: number;
  /** With `check`: the invariants (sim/invariants.ts) checked every virtual second, and what broke. */
  invariants?: { checks: number; violations: number; first: Violation[] };
}

/** Where a long run has got to, reported after each 10 s virtual slice. */
export type Progress = (virtualMs: number, wallMs: number, rssBytes: number) => void;

/** Slices between progress reports and memory samples; with `check`, invariants are checked every CHECK_EVERY_MS within them. */
const SLICE_MS = 10_000;
const CHECK_EVERY_MS = 1_000;

export function runScenario(scenario: Scenario, params: ScenarioParams, label = scenario.name, progress?: Progress, check = false): RunResult {
  const gc = (globalThis as { gc?: () => void }).gc;
  gc?.();
  const heapBefore = process.memoryUsage().heapUsed;
  let peakRss = process.memoryUsage().rss;
  const started = process.hrtime.bigint();
  const sim = new Simulation({ seed: params.seed, config: params.config, network: params.network, keepEvents: false });
  const rec = new Recorder(sim);
  const checker = check ? new InvariantChecker(sim) : undefined;
  scenario.setup(sim, rec, params);
  // Run in slices so peak memory can be sampled without touching the simulation's own logic.
  const endMs = params.seconds * 1_000;
  for (let t = SLICE_MS; ; t += SLICE_MS) {
    if (checker !== undefined) {
      for (let c = t - SLICE_MS + CHECK_EVERY_MS; c < Math.min(t, endMs); c += CHECK_EVERY_MS) {
        sim.runUntil(c);
        checker.check();
      }
    }
    sim.runUntil(Math.min(t, endMs));
    checker?.check();
    const rss = process.memoryUsage().rss;
    peakRss = Math.max(peakRss, rss);
    progress?.(Math.min(t, endMs), Number(process.hrtime.bigint() - started) / 1e6, rss);
    if (t >= endMs) break;
  }
  const wallMs = Number(process.hrtime.bigint() - started) / 1e6;
  gc?.();
  const heapBytes = gc === undefined ? undefined : process.memoryUsage().heapUsed - heapBefore;
  checker?.close();
  return {
    scenario: scenario.name, label, params, metrics: rec.finish(heapBytes), wallMs, events: sim.eventsProcessed,
    eventsPerWallSecond: sim.eventsProcessed / (wallMs / 1000), peakRssBytes: peakRss,
    ...(checker !== undefined ? { invariants: { checks: checker.checks, violations: checker.count, first: checker.violations.slice(0, 10) } } : {}),
  };
}
