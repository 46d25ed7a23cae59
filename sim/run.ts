/** Runs one scenario to the end and returns what it measured, with the cost of running it. */
import { Simulation } from './engine.js';
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
}

/** Where a long run has got to, reported after each 10 s virtual slice. */
export type Progress = (virtualMs: number, wallMs: number, rssBytes: number) => void;

export function runScenario(scenario: Scenario, params: ScenarioParams, label = scenario.name, progress?: Progress): RunResult {
  const gc = (globalThis as { gc?: () => void }).gc;
  gc?.();
  const heapBefore = process.memoryUsage().heapUsed;
  let peakRss = process.memoryUsage().rss;
  const started = process.hrtime.bigint();
  const sim = new Simulation({ seed: params.seed, config: params.config, network: params.network, keepEvents: false });
  const rec = new Recorder(sim);
  scenario.setup(sim, rec, params);
  // Run in slices so peak memory can be sampled without touching the simulation's own logic.
  const endMs = params.seconds * 1_000;
  for (let t = 10_000; ; t += 10_000) {
    sim.runUntil(Math.min(t, endMs));
    const rss = process.memoryUsage().rss;
    peakRss = Math.max(peakRss, rss);
    progress?.(Math.min(t, endMs), Number(process.hrtime.bigint() - started) / 1e6, rss);
    if (t >= endMs) break;
  }
  const wallMs = Number(process.hrtime.bigint() - started) / 1e6;
  gc?.();
  const heapBytes = gc === undefined ? undefined : process.memoryUsage().heapUsed - heapBefore;
  return {
    scenario: scenario.name, label, params, metrics: rec.finish(heapBytes), wallMs, events: sim.eventsProcessed,
    eventsPerWallSecond: sim.eventsProcessed / (wallMs / 1000), peakRssBytes: peakRss,
  };
}
