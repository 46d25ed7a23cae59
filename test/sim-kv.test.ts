/**
 * The key-value store on a simulated cluster (sim/kv.ts): random puts, deletes, a partition, a
 * restart and datagram loss; once quiet, every replica holds the same map, and it is the map
 * last-writer-wins makes of every write issued (so no deleted key came back and no write was
 * lost). At every step, each replica's register for a key only ever moves to a later one: no
 * replica goes back to an older value or brings a deleted key back under an older write. Each
 * seed replays exactly.
 */
import { describe, expect, test } from 'vitest';
import { randomFloat, randomInt, seededRng } from '../src/core/rng.js';
import { type KvRecord, supersedes } from '../src/registry/kv.js';
import { Simulation } from '../sim/engine.js';
import { SimKv } from '../sim/kv.js';

const NODES = 20;
const KEYS = 40;

interface Run {
  /** Every replica's records, one line each, sorted by key. */
  maps: Map<string, string>;
  /** The winner of every write issued, by key. */
  expected: Map<string, KvRecord>;
  /** Changes that moved a replica's register for a key back to an earlier one (checked at every change). */
  regressions: string[];
  events: number;
}

function line(r: KvRecord): string {
  return `${r.key}=${r.deleted ? '<deleted>' : Buffer.from(r.value).toString('hex')}@${r.wall}.${r.counter}.${r.writer}`;
}

function run(seed: number): Run {
  const sim = new Simulation({ seed, config: { profile: 'lan' }, network: { latency: { minMs: 0.5, maxMs: 2 }, lossRate: 0.1 }, keepEvents: false });
  const names = Array.from({ length: NODES }, (_, i) => `n${i}`);
  sim.bootstrap(names);
  // A restarted member keeps its store, as with a data directory: every write issued must survive.
  const kv = new SimKv(sim, { persist: true });
  const heldAt = new Map<string, KvRecord>();
  const regressions: string[] = [];
  kv.onChange((name, change, nowMs) => {
    const key = `${name} ${change.key}`;
    const before = heldAt.get(key);
    if (before !== undefined && !supersedes(change.entry, before)) regressions.push(`${nowMs} ms ${name}: ${line(change.entry)} after ${line(before)}`);
    heldAt.set(key, change.entry);
  });
  const rng = seededRng((seed ^ 0x7e57) >>> 0);
  const expected = new Map<string, KvRecord>();
  const issue = (records: KvRecord[]): void => {
    for (const r of records) {
      const held = expected.get(r.key);
      if (held === undefined || supersedes(r, held)) expected.set(r.key, r);
    }
  };
  const ops = 300;
  for (let i = 0; i < ops; i++) {
    sim.at(1_000 + i * 100, () => {
      const up = names.filter((n) => sim.node(n).up);
      const at = up[randomInt(rng, up.length)] as string;
      const key = `k/${randomInt(rng, KEYS)}`;
      if (randomFloat(rng) < 0.3) issue(kv.delete(at, key));
      else issue([kv.put(at, key, Uint8Array.of(randomInt(rng, 256), i & 0xff))]);
    });
  }
  // Faults while writing: a third of the cluster cut off for 8 s, one member down for 5 s.
  sim.at(6_000, () => {
    const heal = sim.partition(names.slice(0, 7), names.slice(7));
    sim.at(sim.nowMs + 8_000, heal);
  });
  sim.at(15_000, () => {
    sim.crash('n13');
    sim.at(sim.nowMs + 5_000, () => {
      sim.restart('n13');
      sim.join('n13', ['n0']);
    });
  });
  sim.runUntil(1_000 + ops * 100);
  // Quiet: no writes, no faults; anti-entropy (1 s rounds) repairs what gossip missed.
  sim.network.setLossRate(0);
  sim.runFor(30_000);
  const maps = new Map<string, string>();
  for (const r of kv.all()) maps.set(r.name, r.store.records().sort((a, b) => (a.key < b.key ? -1 : 1)).map(line).join('\n'));
  return { maps, expected, regressions, events: sim.eventsProcessed };
}

describe('key-value store in simulation', () => {
  for (const seed of [1, 2, 3]) {
    test(`converges to last-writer-wins of every write, seed ${seed}`, () => {
      const r = run(seed);
      const reproduce = `reproduce with seed=${seed} (test/sim-kv.test.ts)`;
      const want = [...r.expected.values()].sort((a, b) => (a.key < b.key ? -1 : 1)).map(line).join('\n');
      expect(r.regressions.slice(0, 5), reproduce).toEqual([]);
      expect(r.maps.size, reproduce).toBe(NODES);
      for (const [name, map] of r.maps) expect(map, `${name}: ${reproduce}`).toBe(want);
      // Deletes happened, and are still deletes everywhere.
      expect([...r.expected.values()].some((x) => x.deleted), reproduce).toBe(true);
    });
  }

  test('a seed replays the same run', () => {
    const a = run(4);
    const b = run(4);
    expect(b.events).toBe(a.events);
    expect([...b.maps]).toEqual([...a.maps]);
  });
});
