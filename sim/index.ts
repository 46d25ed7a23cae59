/**
 * `grapevine/sim`: run whole clusters on a virtual clock in your own tests. The simulator drives
 * the same protocol core as the runtime, on a seeded virtual network, so a run is fast (minutes
 * of cluster time in milliseconds), needs no sockets, and replays exactly from its seed.
 *
 * ```ts
 * import { simulate } from 'grapevine/sim';
 * const cluster = simulate({ nodes: 20, seed: 42 });     // n0..n19, all joined through n0
 * cluster.runFor(10_000);
 * cluster.crash('n7');
 * cluster.runFor(30_000);
 * cluster.view('n1').member('n7')?.state;                 // 'dead'
 * ```
 */
import type { ConfigOptions } from '../src/core/config.js';
import type { Membership } from '../src/core/membership.js';
import { Simulation, type SimulationOptions } from './engine.js';
import type { NetworkOptions } from './network.js';

export { Simulation } from './engine.js';
export type { NodeCounters, NodeOptions, SimNode, SimulationOptions, TracedFrame } from './engine.js';
export { Network } from './network.js';
export type { DropRule, Frame, Latency, NetworkOptions } from './network.js';
export { Recorder, distribution } from './metrics.js';
export type { CrashFigures, Distribution, RunMetrics, Sample } from './metrics.js';
export { runScenario } from './run.js';
export type { RunResult } from './run.js';
export { SCENARIOS } from './scenarios/index.js';
export type { Scenario, ScenarioParams } from './scenarios/index.js';

export interface SimulateOptions {
  /** Members to start, named n0..n{nodes-1}; all join through n0. */
  nodes: number;
  /** Chooses every random draw of the run; the same seed replays the same run. */
  seed: number;
  /** Protocol profile and overrides, as for Grapevine.start ({ profile: 'lan', probeIntervalMs: ... }). */
  config?: ConfigOptions;
  network?: NetworkOptions;
  /** Spread the joins over this much virtual time (default: all at once). */
  joinSpreadMs?: number;
  trace?: boolean;
}

/** A simulated cluster, with a read-only view of any member's table. */
export class SimulatedCluster extends Simulation {
  /** What member `name` knows: `members()`, `member(other)`, `healthScore`, `incarnation`. */
  view(name: string): Pick<Membership, 'members' | 'member' | 'healthScore' | 'incarnation' | 'liveMembers' | 'stats'> {
    return this.node(name).core;
  }

  /** True when every running member sees exactly the running members alive, and nothing else alive. */
  converged(): boolean {
    const live = this.liveNodes().map((n) => n.name).sort();
    return this.liveNodes().every((n) => {
      const alive = n.core.members().filter((m) => m.state === 'alive').map((m) => m.name).sort();
      return alive.length === live.length && alive.every((name, i) => name === live[i]);
    });
  }
}

/** Builds a cluster of `nodes` members that join through n0, ready to run. */
export function simulate(options: SimulateOptions): SimulatedCluster {
  const sim: SimulationOptions = { seed: options.seed };
  if (options.config !== undefined) sim.config = options.config;
  if (options.network !== undefined) sim.network = options.network;
  if (options.trace !== undefined) sim.trace = options.trace;
  const cluster = new SimulatedCluster(sim);
  cluster.startCluster(options.nodes, options.joinSpreadMs ?? 0);
  return cluster;
}
