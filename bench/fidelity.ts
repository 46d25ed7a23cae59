/**
 * `npm run bench:fidelity` (as root): does the simulator tell the truth? The same scenarios run
 * in the simulator (several seeds) and as real agent processes (several clusters), and the
 * medians are set side by side with their ratio.
 *
 * Per cluster size and loss rate (real: iptables statistic drops of UDP and TCP on the loopback
 * of a namespace the bench makes, bench/netns.ts; simulator: the same share of datagrams lost,
 * and stream frames delayed by TCP's retransmission timeouts for their lost segments):
 * - join: from a member's first sight of the cluster to the last member that started before it
 *   seeing it (real members start over seconds where the simulator's start within one);
 * - idle: bytes sent per member per second, once settled;
 * - crash: a random member other than the first is killed; first suspicion, first and all
 *   members declaring it dead (real: `--crashes` kills per cluster, `--gap-s` apart);
 * - suspicions of live members per member and minute, from the settled cluster to the end.
 * Both use the LAN profile with `--protocol` overrides; the simulator's datagrams take its
 * default 1 ms. Bounded in time; the namespace goes on every exit path.
 *   npm run bench:fidelity -- --sizes 30,100 --losses 0,0.1 --seeds 12 --trials 2 --crashes 3
 */
import { parseArgs } from 'node:util';
import { Recorder, SCENARIOS, Simulation } from '../sim/index.js';
import { everyoneReports, GrapevineCluster, sleep, waitUntil } from './clusters.js';
import { enterNamespace, measuredLoss, rng, setLoss } from './netns.js';
import { fmt, median, table } from './util.js';

const { values } = parseArgs({
  options: {
    sizes: { type: 'string', default: '30,100' },
    losses: { type: 'string', default: '0,0.1' },
    seeds: { type: 'string', default: '12' },
    trials: { type: 'string', default: '2' },
    crashes: { type: 'string', default: '3' },
    'gap-s': { type: 'string', default: '25' },
    protocol: { type: 'string' },
    inside: { type: 'string' },
  },
});

const SIZES = values.sizes.split(',').map((s) => Math.max(3, Math.min(200, Number(s))));
const LOSSES = values.losses.split(',').map((s) => Math.max(0, Math.min(0.5, Number(s))));
const SEEDS = Math.max(1, Math.min(100, Number(values.seeds)));
const TRIALS = Math.max(1, Math.min(10, Number(values.trials)));
const CRASHES = Math.max(1, Math.min(10, Number(values.crashes)));
const GAP_MS = Math.max(10, Number(values['gap-s'])) * 1000;
const SETTLE_MS = 15_000;
const IDLE_MS = 10_000;
const PROTOCOL = values.protocol === undefined ? undefined : JSON.parse(values.protocol) as Record<string, number>;
const DEADLINE_MS = SIZES.length * LOSSES.length * TRIALS * (240_000 + SETTLE_MS + IDLE_MS + CRASHES * GAP_MS) + 600_000;

await enterNamespace('bench:fidelity', import.meta.url, values.inside, DEADLINE_MS);

/** One cell's samples: every join, every crash, and one idle rate and suspicion rate per run. */
interface Samples { joinMs: number[]; idleBytes: number[]; firstSuspectMs: number[]; firstDeadMs: number[]; allDeadMs: number[]; suspicionsPerMemberMin: number[] }
const empty = (): Samples => ({ joinMs: [], idleBytes: [], firstSuspectMs: [], firstDeadMs: [], allDeadMs: [], suspicionsPerMemberMin: [] });

/**
 * Per join, as real() measures it: from the joiner's first sight of anyone (or anyone's of it) to
 * the last member that started earlier seeing it. `startOf` and `seen` come from the events.
 */
function joinTimes(names: string[], startOf: (s: string) => number, seen: (observer: string, subject: string) => number | undefined): number[] {
  const out: number[] = [];
  for (const s of names.slice(1)) {
    const earlier = names.filter((o) => o !== s && startOf(o) < startOf(s));
    const times = earlier.map((o) => seen(o, s));
    if (earlier.length > 0 && times.every((t) => t !== undefined)) out.push(Math.max(...(times as number[])) - startOf(s));
  }
  return out;
}

function simulate(n: number, loss: number): Samples {
  const out = empty();
  const warmupS = 20 + Math.ceil(n / 100);
  const seconds = warmupS + 40;
  for (let seed = 1; seed <= SEEDS; seed++) {
    const params = { nodes: n, seconds, seed, config: { profile: 'lan' as const, ...PROTOCOL }, network: { lossRate: loss }, options: { count: '1' } };
    const sim = new Simulation({ seed, config: params.config, network: params.network });
    const rec = new Recorder(sim);
    SCENARIOS.crash!.setup(sim, rec, params);
    sim.runUntil(seconds * 1_000);
    const m = rec.finish();
    const nodes = [...sim.nodes.values()];
    const joinedAt = new Map<string, number>(); // "observer>subject" -> first 'joined'
    for (const node of nodes) {
      for (const { atMs, event } of node.events) {
        if (event.type === 'joined' && 'member' in event && !joinedAt.has(`${node.name}>${event.member.name}`)) joinedAt.set(`${node.name}>${event.member.name}`, atMs);
      }
    }
    const names = nodes.map((x) => x.name);
    const starts = new Map(names.map((x) => [x, Math.min(...[...joinedAt].filter(([k]) => k.startsWith(`${x}>`) || k.endsWith(`>${x}`)).map(([, t]) => t))]));
    out.joinMs.push(...joinTimes(names, (x) => starts.get(x) as number, (o, x) => joinedAt.get(`${o}>${x}`)));
    const idle = m.samples.filter((x) => x.tMs > (warmupS - IDLE_MS / 1000) * 1000 && x.tMs <= warmupS * 1000);
    out.idleBytes.push(idle.reduce((a, x) => a + x.bytesPerNodePerS, 0) / Math.max(1, idle.length));
    for (const c of m.crashes) {
      if (c.firstSuspectMs !== undefined) out.firstSuspectMs.push(c.firstSuspectMs);
      if (c.firstDeadMs !== undefined) out.firstDeadMs.push(c.firstDeadMs);
      if (c.allDeadMs !== undefined) out.allDeadMs.push(c.allDeadMs);
    }
    // The whole run, joins included, as the real count runs from the joins too.
    out.suspicionsPerMemberMin.push(m.falseSuspicions.events / n / (seconds / 60));
  }
  return out;
}

async function real(n: number, loss: number, trial: number): Promise<Samples> {
  const out = empty();
  const sys = new GrapevineCluster('grapevine', PROTOCOL);
  setLoss(loss);
  const from = Date.now();
  try {
    await sys.start(n);
    const names = sys.members.map((m) => m.name);
    const joined = (o: string, s: string): number | undefined => sys.observations.find((x) => x.observer === o && x.kind === 'join' && x.subject === s)?.at;
    await waitUntil(() => names.every((o) => names.every((s) => s === o || joined(o, s) !== undefined)), `every member to see all ${n}`);
    // A member's join starts when it first hears of anyone (the seed's answer) or is first heard of.
    const startOf = new Map(names.map((x) => [x, Math.min(...sys.observations.filter((o) => o.kind === 'join' && (o.observer === x || o.subject === x)).map((o) => o.at))]));
    out.joinMs.push(...joinTimes(names, (x) => startOf.get(x) as number, joined));
    await sleep(SETTLE_MS);
    const before = await sys.stats();
    const idleFrom = Date.now();
    await sleep(IDLE_MS);
    const after = await sys.stats();
    const sum = (xs: { bytesOut: number }[]): number => xs.reduce((a, x) => a + x.bytesOut, 0);
    out.idleBytes.push((sum(after) - sum(before)) / n / ((Date.now() - idleFrom) / 1000));

    const random = rng(trial * 7919 + n);
    const victims: string[] = [];
    for (let i = 0; i < CRASHES; i++) {
      const candidates = names.slice(1).filter((x) => !victims.includes(x));
      const victim = candidates[Math.floor(random() * candidates.length)] as string;
      victims.push(victim);
      const killedAt = Date.now();
      sys.members.find((m) => m.name === victim)?.signal('SIGKILL');
      const dead = await everyoneReports(sys, 'dead', victim, killedAt);
      const suspected = sys.observations.filter((o) => o.kind === 'suspect' && o.subject === victim && o.at >= killedAt).map((o) => o.at - killedAt);
      if (suspected.length > 0) out.firstSuspectMs.push(Math.min(...suspected));
      if (!Number.isNaN(dead.first)) out.firstDeadMs.push(dead.first);
      if (!Number.isNaN(dead.all)) out.allDeadMs.push(dead.all);
      await sleep(Math.max(0, killedAt + GAP_MS - Date.now()));
    }
    const minutes = (Date.now() - from) / 60_000;
    const falseSuspicions = sys.observations.filter((o) => o.kind === 'suspect' && !victims.includes(o.subject)).length;
    out.suspicionsPerMemberMin.push(falseSuspicions / n / minutes);
  } finally {
    await sys.stopAll();
    setLoss(0);
  }
  return out;
}

const FIGURES: [keyof Samples, string, number, number][] = [
  ['joinMs', 'join: seen by every earlier member (ms)', 0, 1],
  ['idleBytes', 'idle: bytes per member per second', 0, 1],
  ['firstSuspectMs', 'crash: first suspicion (s)', 2, 1e-3],
  ['firstDeadMs', 'crash: first declares dead (s)', 2, 1e-3],
  ['allDeadMs', 'crash: all declare dead (s)', 2, 1e-3],
  ['suspicionsPerMemberMin', 'suspicions of live members per member-minute', 3, 1],
];

const rows: (string | number)[][] = [['N', 'loss', 'figure', 'sim median', 'sim n', 'real median', 'real n', 'sim/real']];
const results: Record<string, { sim: Samples; real: Samples }> = {};
const mid = (xs: number[]): number => (xs.length === 0 ? Number.NaN : median(xs));
for (const loss of LOSSES) {
  setLoss(loss);
  const lost = await measuredLoss();
  setLoss(0);
  console.log(`loss ${loss * 100}%: measured on UDP ${fmt(lost * 100, 1)}%`);
}
for (const n of SIZES) {
  for (const loss of LOSSES) {
    const t0 = Date.now();
    const sim = simulate(n, loss);
    console.log(`N=${n} loss ${loss * 100}%: ${SEEDS} simulator runs in ${fmt((Date.now() - t0) / 1000, 1)} s`);
    const merged = empty();
    for (let trial = 1; trial <= TRIALS; trial++) {
      const r = await real(n, loss, trial);
      for (const k of Object.keys(merged) as (keyof Samples)[]) merged[k].push(...r[k]);
      console.log(`N=${n} loss ${loss * 100}%: real cluster ${trial} of ${TRIALS} done (all dead: ${r.allDeadMs.map((x) => fmt(x / 1000, 2)).join(', ')} s)`);
      await sleep(2_000);
    }
    results[`${n}/${loss}`] = { sim, real: merged };
    for (const [key, label, digits, scale] of FIGURES) {
      const s = mid(sim[key]);
      const r = mid(merged[key]);
      rows.push([n, `${loss * 100}%`, label, Number.isNaN(s) ? '-' : fmt(s * scale, digits), sim[key].length,
        Number.isNaN(r) ? '-' : fmt(r * scale, digits), merged[key].length, r > 0 && !Number.isNaN(s) ? fmt(s / r, 2) : '-']);
    }
  }
}
console.log(table(rows));
console.log(`\n${JSON.stringify({ sizes: SIZES, losses: LOSSES, seeds: SEEDS, trials: TRIALS, crashes: CRASHES, protocol: PROTOCOL, results })}`);
