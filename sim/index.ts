/**
 * `grapevine-registry/sim`: run whole clusters on a virtual clock in your own tests. The simulator drives
 * the same protocol core as the runtime, on a seeded virtual network, so a run is fast (minutes
 * of cluster time in milliseconds), needs no sockets, and replays exactly from its seed.
 *
 * ```ts
 * import { simulate } from 'grapevine-registry/sim';
 * const cluster = simulate({ nodes: 20, seed: 42 });     // n0..n19, all joined through n0
 * cluster.runFor(10_000);
 * cluster.crash('n7');
 * cluster.runFor(30_000);
 * cluster.view('n1').member('n7')?.state;                 // 'dead'
 *
 * cluster.register('n3', { name: 'billing', port: 8080 });
 * cluster.runFor(2_000);
 * cluster.view('n9').lookup('billing');                   // [{ node: 'n3', port: 8080, ... }]
 * ```
 */
export { Simulation } from './engine.js';
export type { EventListener, LifecycleListener, NodeCounters, NodeOptions, SimNode, SimulationOptions, TracedFrame } from './engine.js';
export { Network } from './network.js';
export type { DropRule, Frame, Latency, NetworkOptions } from './network.js';
export { Recorder, distribution } from './metrics.js';
export type { CrashFigures, Distribution, RunMetrics, Sample } from './metrics.js';
export { runScenario } from './run.js';
export type { RunResult } from './run.js';
export { SCENARIOS } from './scenarios/index.js';
export { ChurnRecorder } from './churn.js';
export type { ChurnFigures } from './churn.js';
export { converged, InvariantChecker } from './invariants.js';
export { KvTraffic, SimKv } from './kv.js';
export type { InvariantName, Violation } from './invariants.js';
export type { Scenario, ScenarioParams } from './scenarios/index.js';
export { SimulatedCluster, simulate } from './cluster.js';
export type { NodeView, SimulateOptions } from './cluster.js';
