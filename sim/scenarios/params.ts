/** What every scenario is given, and the helpers scenarios share for their options. */
import type { ConfigOptions } from '../../src/core/config.js';
import { seededRng, type Rng } from '../../src/core/rng.js';
import type { Simulation } from '../engine.js';
import type { Recorder } from '../metrics.js';
import type { NetworkOptions } from '../network.js';

export interface ScenarioParams {
  nodes: number;
  /** Virtual seconds to run in all. */
  seconds: number;
  seed: number;
  config: ConfigOptions;
  network: NetworkOptions;
  /** Scenario-specific knobs (e.g. count, fraction, durationS), as given on the command line. */
  options: Record<string, string>;
}

export interface Scenario {
  name: string;
  summary: string;
  setup(sim: Simulation, rec: Recorder, p: ScenarioParams): void;
}

/** Time before the first fault: long enough for the join to converge at this size. */
export function warmupMs(p: ScenarioParams): number {
  return numberOption(p, 'warmupS', 20 + Math.ceil(p.nodes / 100)) * 1_000;
}

export function numberOption(p: ScenarioParams, key: string, fallback: number): number {
  const v = p.options[key];
  if (v === undefined) return fallback;
  const n = Number(v);
  if (!Number.isFinite(n)) throw new Error(`--${key} must be a number, got ${v}`);
  return n;
}

/** The fault schedule's own random stream, derived from the seed. */
export function faultRng(p: ScenarioParams): Rng {
  return seededRng((p.seed ^ 0x5eed_fa17) >>> 0);
}
