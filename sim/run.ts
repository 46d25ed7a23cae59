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

export function runScenario(scenario: Scenario, params: ScenarioParams, label = scenario.name): RunResult {
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
    peakRss = Math.max(peakRss, process.memoryUsage().rss);
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
