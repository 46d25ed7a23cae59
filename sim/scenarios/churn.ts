/**
 * Churn scenarios: what real clusters do to a registry (rolling deploys, autoscaling,
 * replacements, everything starting at once). Each member hosts one service of
 * ceil(N / INSTANCES_PER_SERVICE), so a service keeps instances while one of them restarts; the
 * ChurnRecorder (sim/churn.ts) measures dead instances served, lookup gaps, how fast a new life
 * is seen everywhere, and events per change, with the invariant checker on throughout.
 */
import { randomInt, type Rng } from '../../src/core/rng.js';
import { ChurnRecorder } from '../churn.js';
import type { Simulation } from '../engine.js';
import type { Recorder } from '../metrics.js';
import { faultRng, numberOption, type Scenario, type ScenarioParams, warmupMs } from './params.js';

/** Every member and every restart joins through these, as a deployment's retry-join list would name them. */
export const SEEDS: readonly string[] = ['n0', 'n1', 'n2'];
const INSTANCES_PER_SERVICE = 10;

function serviceOf(p: ScenarioParams, i: number): string {
  return `svc-${i % Math.max(1, Math.ceil(p.nodes / INSTANCES_PER_SERVICE))}`;
}

/** Starts n0 .. n{N-1} over `spreadMs` (n0 first, the rest in order or at random times), each hosting its service. */
function start(sim: Simulation, rec: Recorder, p: ScenarioParams, spreadMs: number, rng?: Rng): ChurnRecorder {
  const churn = new ChurnRecorder(sim);
  rec.churn = churn;
  churn.start('n0', [], { service: serviceOf(p, 0) });
  for (let i = 1; i < p.nodes; i++) {
    const atMs = rng === undefined || i < SEEDS.length ? (spreadMs * i) / p.nodes : randomInt(rng, Math.max(1, spreadMs));
    sim.at(atMs, () => churn.start(`n${i}`, SEEDS, { service: serviceOf(p, i) }));
  }
  return churn;
}

/** The running members other than the seeds. */
function nonSeeds(sim: Simulation): string[] {
  return [...sim.nodes.values()].filter((n) => n.up && !SEEDS.includes(n.name)).map((n) => n.name);
}

function flag(p: ScenarioParams, key: string, fallback: boolean): boolean {
  const v = p.options[key];
  return v === undefined ? fallback : v === 'true';
}

const rollingRestart: Scenario = {
  name: 'rolling-restart',
  summary: 'after warm-up, every member in turn (--batch at once, default N/30; seeds in batches apart unless --seedsTogether) goes down for --downS (5) and comes back under its name; --graceful (true) leaves first, --newAddress (false) moves it; --settleS (5) between batches',
  setup(sim, rec, p) {
    const { churn, warmup } = booted(sim, rec, p);
    const batch = Math.max(1, numberOption(p, 'batch', Math.ceil(p.nodes / 30)));
    const downMs = numberOption(p, 'downS', 5) * 1_000;
    const roundMs = downMs + numberOption(p, 'settleS', 5) * 1_000;
    const graceful = flag(p, 'graceful', true);
    const moved = flag(p, 'newAddress', false);
    const order = restartOrder(p.nodes, batch, flag(p, 'seedsTogether', false));
    for (let first = 0, round = 0; first < p.nodes; first += batch, round++) {
      const names = order.slice(first, first + batch);
      sim.at(warmup + round * roundMs, () => {
        for (const name of names) churn.restart(name, SEEDS, downMs, moved ? { graceful, addr: `${name}.${round + 1}` } : { graceful });
      });
    }
  },
};

/**
 * n0 .. n{N-1} in turn, but with the seeds in batches of their own when there are enough
 * batches: a batch holding every seed restarts them all at once, and members restarted with them
 * then join seeds that know only each other. The two halves find each other only when the old
 * members' rejoin timers fire (7.5-22.5 s on LAN); last-known members kept on disk would let a
 * restart rejoin without its seeds. `--seedsTogether true` keeps the plain order to show it.
 */
function restartOrder(nodes: number, batch: number, seedsTogether = false): string[] {
  const names = Array.from({ length: nodes }, (_, i) => `n${i}`);
  const batches = Math.ceil(nodes / batch);
  if (seedsTogether || batches < SEEDS.length) return names;
  const rest = names.filter((n) => !SEEDS.includes(n));
  // Seed k goes first in batch round(k * batches / seeds).
  SEEDS.forEach((seed, k) => rest.splice(Math.min(rest.length, Math.round((k * batches) / SEEDS.length) * batch), 0, seed));
  return rest;
}

/** The members started over the first second, measured from the end of the warm-up. */
function booted(sim: Simulation, rec: Recorder, p: ScenarioParams): { churn: ChurnRecorder; warmup: number; rng: Rng } {
  const churn = start(sim, rec, p, 1_000);
  const warmup = warmupMs(p);
  churn.measureFrom(warmup);
  return { churn, warmup, rng: faultRng(p) };
}

/** Runs `action` at `fromMs` and then every `everyMs` until the run ends. */
function repeat(sim: Simulation, p: ScenarioParams, fromMs: number, everyMs: number, action: () => void): void {
  const end = p.seconds * 1_000;
  const tick = (): void => {
    action();
    if (sim.nowMs + everyMs < end) sim.at(sim.nowMs + everyMs, tick);
  };
  sim.at(fromMs, tick);
}

const autoscale: Scenario = {
  name: 'autoscale',
  summary: 'after warm-up, every --everyS (1) a new member joins or a random one leaves gracefully, the size kept within N/2 .. 3N/2',
  setup(sim, rec, p) {
    const { churn, warmup, rng } = booted(sim, rec, p);
    let added = 0;
    repeat(sim, p, warmup, numberOption(p, 'everyS', 1) * 1_000, () => {
      const size = sim.upCount;
      const grow = size <= p.nodes / 2 || (size < (3 * p.nodes) / 2 && randomInt(rng, 2) === 0);
      const candidates = nonSeeds(sim);
      if (grow || candidates.length === 0) {
        const i = p.nodes + added++;
        churn.start(`a${i}`, SEEDS, { service: serviceOf(p, i) });
      } else {
        churn.stop(candidates[randomInt(rng, candidates.length)] as string, true);
      }
    });
  },
};

const crashReplace: Scenario = {
  name: 'crash-replace',
  summary: 'after warm-up, every --everyS (10) a random member crashes and a new one under a new name takes its service --replaceS (5) later',
  setup(sim, rec, p) {
    const { churn, warmup, rng } = booted(sim, rec, p);
    const replaceMs = numberOption(p, 'replaceS', 5) * 1_000;
    let replaced = 0;
    repeat(sim, p, warmup, numberOption(p, 'everyS', 10) * 1_000, () => {
      const candidates = nonSeeds(sim);
      if (candidates.length === 0) return;
      const victim = candidates[randomInt(rng, candidates.length)] as string;
      const service = churn.serviceOf(victim);
      churn.stop(victim, false);
      const name = `r${replaced++}`;
      sim.at(sim.nowMs + replaceMs, () => churn.start(name, SEEDS, { service, change: false }));
    });
  },
};

const massJoin: Scenario = {
  name: 'mass-join',
  summary: 'N members start at random times within --spreadS (10) and join through three seeds; measures when all see all after the last start',
  setup(sim, rec, p) {
    const churn = start(sim, rec, p, numberOption(p, 'spreadS', 10) * 1_000, faultRng(p));
    churn.measureFrom(0);
  },
};

export const CHURN_SCENARIOS: readonly Scenario[] = [rollingRestart, autoscale, crashReplace, massJoin];

/** Virtual seconds a churn scenario needs at this size and these options, plus `tailS` to settle. */
export function churnSeconds(scenario: string, p: Omit<ScenarioParams, 'seconds'>, tailS = 30): number {
  const warmupS = warmupMs({ ...p, seconds: 0 }) / 1_000;
  if (scenario === 'mass-join') return numberOption({ ...p, seconds: 0 }, 'spreadS', 10) + tailS;
  if (scenario === 'rolling-restart') {
    const q = { ...p, seconds: 0 };
    const rounds = Math.ceil(p.nodes / Math.max(1, numberOption(q, 'batch', Math.ceil(p.nodes / 30))));
    return warmupS + rounds * (numberOption(q, 'downS', 5) + numberOption(q, 'settleS', 5)) + tailS;
  }
  return warmupS + 120 + tailS;
}
