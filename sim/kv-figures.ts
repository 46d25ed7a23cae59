/**
 * `npm run sim:kv`: the key-value store's figures for issue 26's goals. Every member runs a
 * replica on its simulated core (sim/kv.ts), wired as the runtime wires it; bytes are read off
 * the simulated wire, split by what the kv messages are for.
 *  a. Spread: puts of a 100-byte value at random members; time until every member holds each.
 *     Goal: p99 under 1.5 s at 1,000 members and 10% loss.
 *  b. Bytes per write, from the same runs: kv bytes on the wire caused by the writes (gossip,
 *     pulls, and the anti-entropy repair they set off; not the digests every round opens with,
 *     which are paid whether or not anything is written) over N x the write's size (key + value).
 *     Goal: at most 1.5.
 *  c. Partition: N=30 in two halves, each writing 5,000 different keys while cut off, then
 *     healed; time from the heal until every member holds all 10,000. Goal: within 10 s.
 *     Twice: a short cut (members still alive on both sides) and a long one (each side has
 *     declared the other dead, so membership has to heal first).
 *  d. Two members holding the same 100,000 keys: bytes of one anti-entropy round against the
 *     data size (keys + values), started as the runtime starts it (room.ts: the root-digest probe
 *     when kv-sync.ts has one). Goal: under 1%. Also with one key different.
 * Flags: --sizes 30,300,1000 --losses 0,0.1 --seed 7 --puts 50 --only a,c,d (b comes with a)
 */
import { parseArgs } from 'node:util';
import { randomInt, seededRng } from '../src/core/rng.js';
import { Simulation } from './engine.js';
import { KvTraffic, type KvTrafficCounts, SimKv } from './kv.js';
import { type Distribution, distribution } from './metrics.js';

const { values } = parseArgs({
  options: {
    sizes: { type: 'string', default: '30,300,1000' },
    losses: { type: 'string', default: '0,0.1' },
    seed: { type: 'string', default: '7' },
    puts: { type: 'string', default: '50' },
    only: { type: 'string', default: 'a,c,d' },
  },
});
const sizes = values.sizes.split(',').map(Number);
const losses = values.losses.split(',').map(Number);
const seed = Number(values.seed);
const puts = Number(values.puts);
const only = new Set(values.only.split(','));
/** LAN as in the other figures: one-way 0.5-2 ms. */
const LATENCY = { minMs: 0.5, maxMs: 2 };
const VALUE_BYTES = 100;
/** Time between puts in (a): several are in flight at once, as in a busy cluster. */
const PUT_SPACING_MS = 1_000;
/** A put not everywhere this long after it was made counts as never. */
const SPREAD_BOUND_MS = 30_000;

const names = (n: number): string[] => Array.from({ length: n }, (_, i) => `n${i}`);
const ms = (x: number): string => (Number.isNaN(x) ? '-' : `${Math.round(x)}`);
const pct = (x: number): string => `${(x * 100).toFixed(3)}%`;
const kib = (x: number): string => `${(x / 1024).toFixed(1)} KiB`;
const dist = (d: Distribution): string => `${ms(d.p50)} / ${ms(d.p99)} / ${ms(d.max)}`;
/** Anti-entropy bytes: the probes, the digests and the repair they lead to. */
const antiEntropy = (c: KvTrafficCounts): number => c.probe + c.digests + c.repair;

function value(rng: ReturnType<typeof seededRng>): Uint8Array {
  return Uint8Array.from({ length: VALUE_BYTES }, () => randomInt(rng, 256));
}

console.log(`grapevine key-value figures, seed ${seed}, node ${process.version}`);
console.log(`command: npm run sim:kv -- --sizes ${values.sizes} --losses ${values.losses} --seed ${seed} --puts ${puts} --only ${values.only}\n`);
const wallStart = performance.now();

/** A markdown table with its title and notes, as every figure here prints. */
function table(title: string, notes: string[], header: string[], rows: string[]): void {
  console.log(title);
  for (const n of notes) console.log(n);
  console.log(`\n| ${header.join(' | ')} |`);
  console.log(`|${header.map(() => '---|').join('')}`);
  for (const r of rows) console.log(r);
  console.log('');
}

// ---------------------------------------------------------------- a and b
if (only.has('a') || only.has('b')) {
  const rows: string[] = [];
  for (const n of sizes) {
    for (const loss of losses) {
      const wall = performance.now();
      const sim = new Simulation({ seed, config: { profile: 'lan' }, network: { latency: LATENCY, lossRate: loss }, keepEvents: false });
      const all = names(n);
      sim.bootstrap(all);
      const kv = new SimKv(sim);
      sim.runFor(5_000); // let the anti-entropy phases settle
      const traffic = new KvTraffic(sim);
      const baselineMs = 5_000;
      sim.runFor(baselineMs);
      const idle = traffic.take();
      const rng = seededRng((seed ^ 0xa11ce) >>> 0);
      const started = new Map<string, { atMs: number; holders: number }>();
      const spread: number[] = [];
      kv.onChange((_name, change, now) => {
        const p = started.get(change.key);
        if (p === undefined || change.entry.deleted) return;
        if (++p.holders === n) spread.push(now - p.atMs);
      });
      let writeBytes = 0;
      let recordBytes = 0;
      const t0 = sim.nowMs;
      for (let i = 0; i < puts; i++) {
        const writer = all[randomInt(rng, n)] as string;
        const key = `app/config/key-${String(i).padStart(4, '0')}`;
        const v = value(rng);
        writeBytes += key.length + v.length;
        sim.at(t0 + i * PUT_SPACING_MS, () => {
          started.set(key, { atMs: sim.nowMs, holders: 0 });
          const r = kv.put(writer, key, v);
          recordBytes += r.key.length + r.value.length;
        });
      }
      const lastPutMs = t0 + (puts - 1) * PUT_SPACING_MS;
      sim.runUntil(lastPutMs);
      sim.runUntilTrue(() => spread.length === puts, SPREAD_BOUND_MS);
      // Until quiet: the last gossip retires and the anti-entropy rounds find nothing more to repair.
      sim.runFor(10_000);
      const busyMs = sim.nowMs - t0;
      const busy = traffic.take();
      traffic.close();
      const d = distribution(spread);
      // What anti-entropy costs with nothing written is paid anyway: only the excess is the writes'.
      const idleAntiEntropyPerMs = antiEntropy(idle) / baselineMs;
      const aeExcess = antiEntropy(busy) - idleAntiEntropyPerMs * busyMs;
      const ideal = n * (writeBytes / puts);
      const gossipRatio = (busy.gossip + busy.pull) / puts / ideal;
      const aeRatio = aeExcess / puts / ideal;
      const wallS = (performance.now() - wall) / 1_000;
      rows.push(`| ${n} | ${loss * 100}% | ${dist(d)} | ${puts - spread.length} | ${(gossipRatio + aeRatio).toFixed(1)} | ${gossipRatio.toFixed(1)} | ${aeRatio.toFixed(2)} | ${(idleAntiEntropyPerMs * 1_000 / n).toFixed(0)} B | ${(busy.membership / n / (busyMs / 1_000) / 1024).toFixed(1)} KiB | ${wallS.toFixed(1)} s |`);
      console.error(`  a/b N=${n} loss=${loss}: ${wallS.toFixed(1)} s wall, ${sim.eventsProcessed} events, drops ${JSON.stringify([...kv.drops])}`);
      void recordBytes;
    }
  }
  table(`## a, b: ${puts} puts (${VALUE_BYTES}-byte value, ~${VALUE_BYTES + 19}-byte write), one every ${PUT_SPACING_MS} ms at random members; LAN 0.5-2 ms`, [
    'a: ms until every member holds the put (p50 / p99 / max; with 50 puts p99 is the max). b: kv bytes on the wire per write / (N x write size): all of it, the gossip part, the anti-entropy part (its bytes above the idle rate).',
    '"idle AE" is what anti-entropy costs with nothing to repair (per member per second, not per write); "membership" the SWIM traffic beside it, for scale.',
  ], ['N', 'loss', 'a: p50 / p99 / max ms', 'never', 'b: bytes/(N x size)', 'gossip', 'anti-entropy', 'idle AE/member/s', 'membership/member/s', 'wall'], rows);
}

// ---------------------------------------------------------------- c
if (only.has('c')) {
  const rows: string[] = [];
  for (const loss of losses) {
    for (const cutS of [6, 60]) {
      const wall = performance.now();
      const n = 30;
      const sim = new Simulation({ seed, config: { profile: 'lan' }, network: { latency: LATENCY, lossRate: loss }, keepEvents: false });
      const all = names(n);
      sim.bootstrap(all);
      const kv = new SimKv(sim);
      sim.runFor(5_000);
      const left = all.slice(0, n / 2);
      const right = all.slice(n / 2);
      const heal = sim.partition(left, right);
      const keysPerSide = 5_000;
      const writeMs = Math.min(5_000, cutS * 1_000 - 1_000);
      const rng = seededRng((seed ^ 0xc0ffee) >>> 0);
      const t0 = sim.nowMs;
      for (const [side, members] of [['l', left], ['r', right]] as const) {
        for (let i = 0; i < keysPerSide; i++) {
          const writer = members[i % members.length] as string;
          const v = value(rng);
          sim.at(t0 + (i * writeMs) / keysPerSide, () => void kv.put(writer, `part/${side}/${String(i).padStart(5, '0')}`, v));
        }
      }
      sim.runUntil(t0 + cutS * 1_000);
      const before = Math.min(...kv.all().map((r) => r.store.size));
      const aliveAcross = (): number => {
        let seen = 0;
        for (const a of left) for (const b of right) if (sim.stateOf(a, b) === 'alive' && sim.stateOf(b, a) === 'alive') seen++;
        return seen / (left.length * right.length);
      };
      const acrossAtHeal = aliveAcross();
      heal();
      const healedAt = sim.nowMs;
      let membersMs = Number.NaN;
      const full = (): boolean => {
        if (Number.isNaN(membersMs) && aliveAcross() === 1) membersMs = sim.nowMs - healedAt;
        return kv.all().every((r) => r.store.size === 2 * keysPerSide);
      };
      const done = sim.runUntilTrue(full, 180_000);
      const convergedMs = done ? sim.nowMs - healedAt : Number.NaN;
      if (Number.isNaN(membersMs) && sim.runUntilTrue(() => aliveAcross() === 1, 60_000)) membersMs = sim.nowMs - healedAt;
      const wallS = (performance.now() - wall) / 1_000;
      rows.push(`| ${loss * 100}% | ${cutS} s | ${before} | ${(acrossAtHeal * 100).toFixed(0)}% | ${ms(membersMs)} | ${done ? ms(convergedMs) : 'not in 180 s'} | ${wallS.toFixed(1)} s |`);
      console.error(`  c loss=${loss} cut=${cutS}s: ${wallS.toFixed(1)} s wall, drops ${JSON.stringify([...kv.drops])}`);
    }
  }
  table('## c: N=30 in two halves of 15, each half writing 5,000 different keys (100-byte values) over 5 s while cut off, then healed', [
    '"fewest keys" is the smallest store at the heal (each half should hold its 5,000); "alive across" the share of cross-half pairs that still saw each other alive at the heal.',
  ], ['loss', 'cut', 'fewest keys at heal', 'alive across at heal', 'membership healed after ms', 'all 10,000 everywhere after ms', 'wall'], rows);
}

// ---------------------------------------------------------------- d
if (only.has('d')) {
  const wall = performance.now();
  const sim = new Simulation({ seed, config: { profile: 'lan' }, network: { latency: LATENCY }, keepEvents: false });
  sim.bootstrap(['a', 'b']);
  const kv = new SimKv(sim, { syncIntervalMs: 0 });
  const a = kv.replica('a').store;
  const b = kv.replica('b').store;
  const rng = seededRng((seed ^ 0xd00d) >>> 0);
  const count = 100_000;
  let dataBytes = 0;
  for (let i = 0; i < count; i++) {
    const r = a.put(sim.nowMs, `app/config/key-${String(i).padStart(6, '0')}`, value(rng));
    b.merge(sim.nowMs, r);
    dataBytes += r.key.length + r.value.length;
  }
  const traffic = new KvTraffic(sim);
  const round = (): { bytes: number; counts: KvTrafficCounts } => {
    kv.antiEntropy('a', 'b');
    sim.runFor(1_000);
    const c = traffic.take();
    return { bytes: antiEntropy(c) + c.gossip + c.pull, counts: c };
  };
  const equal = round();
  const changed = a.put(sim.nowMs, 'app/config/key-000042', value(rng));
  const oneApart = round();
  const fixed = b.get('app/config/key-000042')?.wall === changed.wall && b.get('app/config/key-000042')?.counter === changed.counter;
  const wallS = (performance.now() - wall) / 1_000;
  console.log(`## d: two members with ${count.toLocaleString('en')} keys (100-byte values), data ${kib(dataBytes)}; one anti-entropy round a -> b`);
  console.log('| replicas | round bytes | of the data | repaired |');
  console.log('|---|---|---|---|');
  console.log(`| equal | ${equal.bytes.toFixed(0)} (probe ${equal.counts.probe.toFixed(0)}, digests ${equal.counts.digests.toFixed(0)}) | ${pct(equal.bytes / dataBytes)} | - |`);
  console.log(`| one key apart | ${oneApart.bytes.toFixed(0)} (probe ${oneApart.counts.probe.toFixed(0)}, digests ${oneApart.counts.digests.toFixed(0)}, repair ${oneApart.counts.repair.toFixed(0)}) | ${pct(oneApart.bytes / dataBytes)} | ${fixed ? 'yes' : 'no'} |`);
  console.log(`(wall ${wallS.toFixed(1)} s)\n`);
}

console.log(`total wall time ${((performance.now() - wallStart) / 1_000).toFixed(1)} s`);
