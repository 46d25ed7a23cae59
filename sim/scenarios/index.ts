/**
 * Scenarios as code. Each one schedules its faults on a fresh simulation; the runner then runs it
 * to the end and the recorder measures. The fault scenarios here start the same way: N nodes join
 * through one seed node and are given a warm-up to converge before any fault. The churn scenarios
 * (churn.ts) join through three seeds and measure what churn does to the registry.
 */
import { randomInt, type Rng } from '../../src/core/rng.js';
import type { Simulation } from '../engine.js';
import type { Recorder } from '../metrics.js';
import { CHURN_SCENARIOS } from './churn.js';
import { faultRng, numberOption, type Scenario, type ScenarioParams, warmupMs } from './params.js';

export { faultRng, numberOption, warmupMs } from './params.js';
export type { Scenario, ScenarioParams } from './params.js';

/**
 * Starts n0 and lets the others join through it over the first second; tracks every join. With
 * --bootstrap true every node starts already knowing every other (as after a long-settled join),
 * which skips the join's O(N² log N) messages for steady-state runs at large N.
 */
export function boot(sim: Simulation, rec: Recorder, p: ScenarioParams): void {
  if (p.options.bootstrap === 'true') {
    sim.bootstrap(Array.from({ length: p.nodes }, (_, i) => `n${i}`));
    return;
  }
  rec.trackJoin('n0');
  sim.addNode('n0');
  for (let i = 1; i < p.nodes; i++) {
    const name = `n${i}`;
    sim.at(sim.nowMs + (1_000 * i) / p.nodes, () => {
      sim.addNode(name);
      rec.trackJoin(name);
      sim.join(name, ['n0']);
    });
  }
}

/** k distinct random nodes other than the seed node n0. */
export function pick(rng: Rng, sim: Simulation, k: number): string[] {
  const names = [...sim.nodes.values()].filter((n) => n.up && n.name !== 'n0').map((n) => n.name);
  const chosen: string[] = [];
  while (chosen.length < k && names.length > 0) chosen.push(names.splice(randomInt(rng, names.length), 1)[0] as string);
  return chosen;
}

/** Boots the cluster, then at the end of the warm-up applies `fault` to --count nodes (default 1%). */
function countedFault(sim: Simulation, rec: Recorder, p: ScenarioParams, fault: (name: string) => void): void {
  boot(sim, rec, p);
  sim.at(warmupMs(p), () => {
    for (const name of pick(faultRng(p), sim, numberOption(p, 'count', Math.max(1, Math.round(p.nodes / 100))))) fault(name);
  });
}

const join: Scenario = {
  name: 'join',
  summary: 'N nodes join through one seed node; measures how fast each join reaches everyone',
  setup: boot,
};

const crash: Scenario = {
  name: 'crash',
  summary: 'after warm-up, --count nodes (default 1%) crash silently; measures detection',
  setup(sim, rec, p) {
    countedFault(sim, rec, p, (name) => {
      rec.trackCrash(name);
      sim.crash(name);
    });
  },
};

const leave: Scenario = {
  name: 'leave',
  summary: 'after warm-up, --count nodes (default 1%) leave gracefully, then exit',
  setup(sim, rec, p) {
    countedFault(sim, rec, p, (name) => {
      rec.trackCrash(name);
      sim.leave(name);
      sim.at(sim.nowMs + 2_000, () => sim.crash(name));
    });
  },
};

const loss: Scenario = {
  name: 'loss',
  summary: 'steady state under the --loss rate; counts false suspicions and deaths',
  setup: boot,
};

const partition: Scenario = {
  name: 'partition',
  summary: 'after warm-up, --fraction (0.2) of nodes is cut off for --durationS (30) seconds, then heals',
  setup(sim, rec, p) {
    boot(sim, rec, p);
    sim.at(warmupMs(p), () => {
      const cut = pick(faultRng(p), sim, Math.max(1, Math.round(p.nodes * numberOption(p, 'fraction', 0.2))));
      const cutSet = new Set(cut);
      const rest = [...sim.nodes.keys()].filter((n) => !cutSet.has(n));
      for (const name of cut) rec.markUnreachable(name);
      const heal = sim.partition(cut, rest);
      sim.at(sim.nowMs + numberOption(p, 'durationS', 30) * 1_000, heal);
    });
  },
};

const pauses: Scenario = {
  name: 'pauses',
  summary: 'after warm-up, --fraction (0.05) of nodes stall for --stallMinMs to --stallMaxMs (1-3 s) again and again (GC pauses, a blocked event loop)',
  setup(sim, rec, p) {
    boot(sim, rec, p);
    const rng = faultRng(p);
    const end = p.seconds * 1_000;
    const shortest = numberOption(p, 'stallMinMs', 1_000);
    const longest = Math.max(shortest, numberOption(p, 'stallMaxMs', 3_000));
    sim.at(warmupMs(p), () => {
      for (const name of pick(rng, sim, Math.max(1, Math.round(p.nodes * numberOption(p, 'fraction', 0.05))))) {
        rec.markFaulty(name);
        const stall = (): void => {
          const ms = shortest + randomInt(rng, longest - shortest + 1);
          sim.pause(name, ms);
          const next = sim.nowMs + ms + 5_000 + randomInt(rng, 10_001);
          if (next < end) sim.at(next, stall);
        };
        sim.at(sim.nowMs + randomInt(rng, 10_000), stall);
      }
    });
  },
};

/**
 * A starved event loop reads its socket late while its timers still fire (Node runs expired
 * timers before polling I/O), so answers look late to the node itself: it is the one that
 * wrongly accuses others, the case Lifeguard's local health exists for. Modelled as every
 * frame to the node arriving --slowMs later; `sim.slow()` instead delays timers and input alike.
 */
const slow: Scenario = {
  name: 'slow',
  summary: 'after warm-up, --fraction (0.05) of nodes read their input --slowMs (800) late for the rest of the run (CPU starvation)',
  setup(sim, rec, p) {
    boot(sim, rec, p);
    const delayMs = numberOption(p, 'slowMs', 800);
    sim.at(warmupMs(p), () => {
      for (const name of pick(faultRng(p), sim, Math.max(1, Math.round(p.nodes * numberOption(p, 'fraction', 0.05))))) {
        rec.markFaulty(name);
        for (const other of sim.liveNodes()) {
          if (other.name !== name) sim.network.setLinkLatency(other.name, name, { minMs: delayMs, maxMs: delayMs * 1.5 }, true);
        }
      }
    });
  },
};

const churn: Scenario = {
  name: 'churn',
  summary: 'after warm-up, a random node crashes every --everyS (2) seconds and comes back --downS (30) later',
  setup(sim, rec, p) {
    boot(sim, rec, p);
    const rng = faultRng(p);
    const everyMs = numberOption(p, 'everyS', 2) * 1_000;
    const downMs = numberOption(p, 'downS', 30) * 1_000;
    const end = p.seconds * 1_000;
    const tick = (): void => {
      const [name] = pick(rng, sim, 1);
      if (name !== undefined) {
        rec.trackCrash(name);
        sim.crash(name);
        sim.at(sim.nowMs + downMs, () => {
          sim.restart(name);
          rec.trackJoin(name);
          sim.join(name, ['n0']);
        });
      }
      if (sim.nowMs + everyMs < end) sim.at(sim.nowMs + everyMs, tick);
    };
    sim.at(warmupMs(p), tick);
  },
};

const restart: Scenario = {
  name: 'restart',
  summary: 'after warm-up, --count nodes (1%) crash and restart under the same name --downS (20) later',
  setup(sim, rec, p) {
    countedFault(sim, rec, p, (name) => {
      rec.trackCrash(name);
      sim.crash(name);
      sim.at(sim.nowMs + numberOption(p, 'downS', 20) * 1_000, () => {
        sim.restart(name);
        rec.trackJoin(name);
        sim.join(name, ['n0']);
      });
    });
  },
};

export const SCENARIOS: Readonly<Record<string, Scenario>> = Object.fromEntries(
  [join, crash, leave, loss, partition, pauses, slow, churn, restart, ...CHURN_SCENARIOS].map((s) => [s.name, s]),
);
