/**
 * `npm run sim:registry`: the registry's figures, for notes. Every member runs its own registry
 * (as the runtime does) and the times are when each member's lookups change.
 *  1. Spread: N members (default 1,000), LAN, 1% loss; registrations on random members; time
 *     until every live member's registry holds each one (p50/p99/max).
 *  2. Removal: members holding instances crash; time until no live member's lookups return their
 *     instances, against the time until all agree the member is dead.
 *  3. A 64 KiB record on one of 100 members: time to reach all, bytes moved against the ideal
 *     (99 x the record: each member receives it once), and the busiest member's bytes.
 * Flags: --nodes 1000 --seed 7 --registrations 40 --crashes 5
 */
import { parseArgs } from 'node:util';
import { type Distribution, distribution } from './metrics.js';
import { SimulatedCluster } from './index.js';

const { values } = parseArgs({
  options: {
    nodes: { type: 'string', default: '1000' },
    seed: { type: 'string', default: '7' },
    registrations: { type: 'string', default: '40' },
    crashes: { type: 'string', default: '5' },
  },
});
const nodes = Number(values.nodes);
const seed = Number(values.seed);
const registrations = Number(values.registrations);
const crashes = Number(values.crashes);
const LATENCY = { minMs: 0.5, maxMs: 2 };

function s(ms: number): string {
  return `${(ms / 1000).toFixed(2)} s`;
}
function dist(d: Distribution): string {
  return `p50 ${s(d.p50)}, p99 ${s(d.p99)}, max ${s(d.max)} (n=${d.count})`;
}
function names(n: number): string[] {
  return Array.from({ length: n }, (_, i) => `n${i}`);
}

console.log(`grapevine registry figures, seed ${seed}, node ${process.version}\n`);

// 1 and 2: spread and removal at N members.
{
  const wall = performance.now();
  const c = new SimulatedCluster({ seed, config: { profile: 'lan' }, network: { latency: LATENCY, lossRate: 0.01 }, keepEvents: false });
  const all = names(nodes);
  c.bootstrap(all);
  for (const n of all) c.view(n); // every member keeps a registry, as in the runtime
  c.runFor(30_000);
  const start = new Map<string, number>();
  const holders = new Map<string, Set<string>>();
  const spread: number[] = [];
  const gone = new Map<string, number>();
  const removedAt: number[] = [];
  c.onService((node, change, now) => {
    const key = `${change.instance.node}/${change.instance.id}`;
    const set = holders.get(key) ?? new Set<string>();
    holders.set(key, set);
    if (change.type === 'added' && start.has(key)) {
      set.add(node);
      if (set.size === c.upCount) spread.push(now - (start.get(key) as number));
    } else if (change.type === 'removed' && gone.has(key)) {
      set.delete(node);
      if (set.size === 0) removedAt.push(now - (gone.get(key) as number));
    }
  });
  const owners: string[] = [];
  for (let i = 0; i < registrations; i++) {
    const owner = all[1 + ((i * 7919) % (nodes - 1))] as string;
    owners.push(owner);
    c.at(c.nowMs + 1_000 + i * 1_500, () => {
      start.set(`${owner}/svc-${i}`, c.nowMs);
      c.register(owner, { name: `svc-${i % 5}`, id: `svc-${i}`, port: 8_000 + i, tags: ['v1'] });
    });
  }
  c.runFor(1_000 + registrations * 1_500 + 10_000);
  console.log(`## registration spread: ${nodes} members, LAN, 1% loss, ${registrations} registrations`);
  console.log(`every live member's lookups hold it after: ${dist(distribution(spread))}`);
  console.log(`registrations that never reached everyone: ${registrations - spread.length}`);

  // Removal: crash members that hold instances; compare with membership's own detection.
  const deadAt = new Map<string, number>();
  const deadCount = new Map<string, number>();
  const detection: number[] = [];
  c.onEvent((_n, e, now) => {
    if (e.type !== 'dead' || !deadAt.has(e.member.name)) return;
    const count = (deadCount.get(e.member.name) ?? 0) + 1;
    deadCount.set(e.member.name, count);
    if (count === c.upCount) detection.push(now - (deadAt.get(e.member.name) as number));
  });
  const victims = [...new Set(owners)].slice(0, crashes);
  for (const v of victims) {
    for (let i = 0; i < registrations; i++) if (owners[i] === v) gone.set(`${v}/svc-${i}`, c.nowMs);
    deadAt.set(v, c.nowMs);
    c.crash(v);
  }
  // Crashed members' registries are not asked.
  for (const key of gone.keys()) for (const v of victims) holders.get(key)?.delete(v);
  c.runFor(60_000);
  console.log(`\n## removal after a crash: ${victims.length} owners crash at once`);
  console.log(`all live members agree the owner is dead: ${dist(distribution(detection))}`);
  console.log(`its instances gone from every live member's lookups: ${dist(distribution(removedAt))}`);
  console.log(`instances still listed somewhere after 60 s: ${gone.size - removedAt.length}`);
  console.log(`(wall ${s(performance.now() - wall)}, ${(process.memoryUsage().rss / 2 ** 20).toFixed(0)} MB RSS)\n`);
}

// 3: a 64 KiB record on one of 100 members.
{
  const c = new SimulatedCluster({ seed, config: { profile: 'lan' }, network: { latency: LATENCY }, keepEvents: false, trace: true });
  const all = names(100);
  c.bootstrap(all);
  for (const n of all) c.view(n);
  c.runFor(20_000);
  // 63 instances with ~1 KiB of metadata each: a record just under the 64 KiB limit.
  const services = Array.from({ length: 63 }, (_, i) => ({ name: 'shard', id: `shard-${i}`, port: 9_000 + i, meta: { blob: 'x'.repeat(1_000) } }));
  const owner = 'n42';
  const bytesOut = (): number[] => all.map((n) => c.node(n).counters.bytesOut);
  const traceFrom = c.trace?.length ?? 0;
  const before = bytesOut();
  // All at one virtual instant: the core gossips only the newest version, so this is one update.
  const startMs = c.nowMs;
  for (const def of services) c.register(owner, def);
  const size = c.view(owner).member(owner)?.record.length ?? 0;
  const reached = c.runUntilTrue(() => all.every((n) => c.view(n).lookup('shard').length === services.length), 10_000);
  const spreadMs = c.nowMs - startMs;
  c.runFor(Math.max(0, 10_000 - spreadMs));
  const after = bytesOut();
  const moved = after.map((b, i) => b - (before[i] as number));
  const total = moved.reduce((a, b) => a + b, 0);
  let recordBytes = 0;
  for (const f of (c.trace ?? []).slice(traceFrom)) if (f.kind === 'stream-reply' && f.bytes.length >= size) recordBytes += f.bytes.length;
  const ideal = 99 * size;
  const busiest = moved.reduce((m, b, i) => (b > (moved[m] as number) ? i : m), 0);
  // The same length of idle time after, as a baseline for gossip and probes.
  c.trace?.splice(0);
  const idleBefore = bytesOut();
  c.runFor(10_000);
  const idle = bytesOut().reduce((a, b, i) => a + b - (idleBefore[i] as number), 0);
  console.log(`## a ${size}-byte record on 1 of 100 members (LAN, no loss)`);
  console.log(`reached every member: ${reached ? `yes, in ${s(spreadMs)}` : 'NO (within 10 s)'}`);
  console.log(`record bytes moved (pull replies): ${recordBytes} = ${(recordBytes / ideal).toFixed(3)} x ideal (${ideal})`);
  console.log(`all bytes in the 10 s window: ${total}, idle baseline ${idle}, net ${total - idle} = ${((total - idle) / ideal).toFixed(3)} x ideal`);
  console.log(`busiest member: ${all[busiest]} sent ${moved[busiest]} bytes (${((moved[busiest] as number) / size).toFixed(1)} records); the owner sent ${moved[all.indexOf(owner)]}`);
}
