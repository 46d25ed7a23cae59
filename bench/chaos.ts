/**
 * `npm run bench:chaos` (as root): crash detection under packet loss and stalled processes,
 * grapevine and HashiCorp serf (when installed) run the same way, one after the other.
 *
 * The bench makes a network namespace of its own and runs itself again inside it, so every
 * member's traffic stays on that namespace's loopback, where iptables drops the chosen share
 * of UDP and TCP packets (statistic match). There, N members (one process each) form a cluster;
 * then loss starts, and every `--every-ms` a random member other than the victim is stopped
 * with SIGSTOP for `--stall-ms` and continued. After `--before-crash-s` the victim is killed
 * (SIGKILL) under the same faults; stalls and loss go on for `--after-crash-s`. `--crashes K`
 * kills K members in turn, `--after-crash-s` apart, and reports medians over them.
 *
 * Reported per system: crash detection (first suspicion, first and all members declaring it
 * dead), false deaths of stalled and of never-stalled members, members falsely suspected, and
 * how long a falsely declared member took to be alive again everywhere. Bounded in time; the
 * namespace is removed, and every process in it killed, on every exit path.
 *   npm run bench:chaos -- --n 30 --loss 0.1 --stall-ms 3000 --every-ms 10000
 *   npm run bench:chaos -- --protocol '{"probeIntervalMs":500,"probeTimeoutMs":250}'
 */
import { execFileSync } from 'node:child_process';
import { parseArgs } from 'node:util';
import { everyoneReports, GrapevineCluster, SerfCluster, sleep, type System, waitUntil } from './clusters.js';
import { enterNamespace, measuredLoss, rng, setLoss } from './netns.js';
import { fmt, table } from './util.js';

const { values } = parseArgs({
  options: {
    n: { type: 'string', default: '30' },
    loss: { type: 'string', default: '0.1' },
    'stall-ms': { type: 'string', default: '3000' },
    'every-ms': { type: 'string', default: '10000' },
    'before-crash-s': { type: 'string', default: '30' },
    'after-crash-s': { type: 'string', default: '30' },
    crashes: { type: 'string', default: '1' },
    systems: { type: 'string', default: 'grapevine,serf' },
    protocol: { type: 'string' },
    seed: { type: 'string', default: '1' },
    inside: { type: 'string' },
  },
});

const N = Math.max(3, Math.min(200, Number(values.n)));
const LOSS = Math.max(0, Math.min(0.9, Number(values.loss)));
const STALL_MS = Math.max(0, Number(values['stall-ms']));
const EVERY_MS = Math.max(1_000, Number(values['every-ms']));
const BEFORE_MS = Math.max(5, Number(values['before-crash-s'])) * 1000;
const AFTER_MS = Math.max(5, Number(values['after-crash-s'])) * 1000;
/** Members killed one after another, each AFTER_MS after the last; figures are medians over them. */
const CRASHES = Math.max(1, Math.min(10, Number(values.crashes)));
const SETTLE_MS = 5_000;
/** The whole run's bound: each system's phases, joins and teardown, with room to spare. */
const DEADLINE_MS = values.systems.split(',').length * (BEFORE_MS + CRASHES * AFTER_MS + 240_000);

await enterNamespace('bench:chaos', import.meta.url, values.inside, DEADLINE_MS);
await inside();

// ---------------------------------------------------------------- inside the namespace

interface Stall { name: string; from: number; to: number }

interface Result {
  firstSuspectMs: number;
  firstDeadMs: number;
  allDeadMs: number;
  allRunningDeadMs: number;
  falseDeathsStalled: number;
  falseDeathsOther: number;
  membersFalselyDead: number;
  membersFalselySuspected: number;
  suspicions: number;
  healMs: number;
  stalls: number;
}

async function run(sys: System, seed: number): Promise<Result> {
  await sys.start(N);
  const names = sys.members.map((m) => m.name);
  await waitUntil(() => names.every((o) => names.every((s) => s === o || sys.observations.some((x) => x.observer === o && x.kind === 'join' && x.subject === s))),
    `${sys.label}: every member to see all ${N}`);
  await sleep(SETTLE_MS);
  const victims = names.slice(N - Math.min(CRASHES, N - 2));
  const stallable = sys.members.filter((m) => !victims.includes(m.name));
  const random = rng(seed);
  const stalls: Stall[] = [];
  const current = new Set<Stall>();
  const faultsFrom = Date.now();
  setLoss(LOSS);
  let stopped = false;
  const stallLoop = (async () => {
    while (!stopped) {
      await sleep(Math.max(0, EVERY_MS - STALL_MS)); // one stall starts every EVERY_MS
      if (stopped || STALL_MS === 0) break;
      const m = stallable[Math.floor(random() * stallable.length)];
      if (m === undefined || !m.running()) continue;
      const stall = { name: m.name, from: Date.now(), to: Number.POSITIVE_INFINITY };
      current.add(stall);
      m.signal('SIGSTOP');
      await sleep(STALL_MS);
      m.signal('SIGCONT');
      stall.to = Date.now();
      current.delete(stall);
      stalls.push(stall);
    }
  })();
  const crashes: { firstSuspectMs: number; firstDeadMs: number; allDeadMs: number; allRunningDeadMs: number }[] = [];
  try {
    await sleep(BEFORE_MS);
    for (const victim of victims) {
      const killedAt = Date.now();
      sys.members.find((m) => m.name === victim)?.signal('SIGKILL');
      const dead = await everyoneReports(sys, 'dead', victim, killedAt);
      const suspected = sys.observations.filter((o) => o.kind === 'suspect' && o.subject === victim && o.at >= killedAt).map((o) => o.at - killedAt);
      // Observers stopped meanwhile can only report once they run again: also shown without them.
      const doneAt = killedAt + dead.all;
      const stoppedMeanwhile = new Set([...stalls, ...current].filter((x) => x.from < doneAt && x.to > killedAt).map((x) => x.name));
      const running = sys.observations.filter((o) => o.kind === 'dead' && o.subject === victim && o.at >= killedAt && !stoppedMeanwhile.has(o.observer)).map((o) => o.at - killedAt);
      crashes.push({
        firstSuspectMs: suspected.length > 0 ? Math.min(...suspected) : Number.NaN, firstDeadMs: dead.first, allDeadMs: dead.all,
        allRunningDeadMs: running.length > 0 ? Math.max(...running) : Number.NaN,
      });
      await sleep(Math.max(0, killedAt + AFTER_MS - Date.now()));
    }
  } finally {
    stopped = true;
    await stallLoop;
    for (const m of stallable) m.signal('SIGCONT');
    setLoss(0);
  }
  // Let refutations land before counting what stayed wrong.
  await sleep(5_000);
  const faultsTo = Date.now();
  const during = sys.observations.filter((o) => o.at >= faultsFrom && o.at <= faultsTo && !victims.includes(o.subject));
  const stalled = new Set(stalls.map((s) => s.name));
  const deaths = during.filter((o) => o.kind === 'dead');
  // Heal: from a falsely dead member's continue to the last observer seeing it alive (or joined) again.
  const heals = [...new Set(deaths.map((d) => d.subject))].flatMap((subject) => {
    const resumed = stalls.filter((s) => s.name === subject).map((s) => s.to);
    const back = during.filter((o) => o.subject === subject && (o.kind === 'alive' || o.kind === 'join')).map((o) => o.at);
    if (resumed.length === 0 || back.length === 0) return [];
    return [Math.max(...back) - Math.min(...resumed)];
  });
  await sys.stopAll();
  const median = (pick: (c: (typeof crashes)[number]) => number): number => {
    const xs = crashes.map(pick).filter((x) => !Number.isNaN(x)).sort((a, b) => a - b);
    return xs.length === 0 ? Number.NaN : xs[Math.floor(xs.length / 2)] as number;
  };
  return {
    firstSuspectMs: median((c) => c.firstSuspectMs),
    firstDeadMs: median((c) => c.firstDeadMs),
    allDeadMs: median((c) => c.allDeadMs),
    allRunningDeadMs: median((c) => c.allRunningDeadMs),
    falseDeathsStalled: deaths.filter((d) => stalled.has(d.subject)).length,
    falseDeathsOther: deaths.filter((d) => !stalled.has(d.subject)).length,
    membersFalselyDead: new Set(deaths.map((d) => d.subject)).size,
    membersFalselySuspected: new Set(during.filter((o) => o.kind === 'suspect').map((o) => o.subject)).size,
    suspicions: during.filter((o) => o.kind === 'suspect').length,
    healMs: heals.length > 0 ? Math.max(...heals) : Number.NaN,
    stalls: stalls.length,
  };
}

async function inside(): Promise<void> {
  const protocol = values.protocol === undefined ? undefined : JSON.parse(values.protocol) as Record<string, number>;
  let serf = true;
  try {
    execFileSync('serf', ['version'], { stdio: 'ignore' });
  } catch {
    serf = false;
    console.log('serf not installed (apt-get install -y serf): running grapevine alone');
  }
  const wanted = values.systems.split(',');
  const systems: System[] = [
    ...(wanted.includes('grapevine') ? [new GrapevineCluster('grapevine', protocol)] : []),
    ...(wanted.includes('serf') && serf ? [new SerfCluster(21_000)] : []),
  ];
  setLoss(LOSS);
  const lost = await measuredLoss();
  setLoss(0);
  console.log(`chaos: N=${N}, ${LOSS * 100}% of UDP and TCP packets dropped (measured on UDP: ${fmt(lost * 100, 1)}%), a ${STALL_MS} ms SIGSTOP every ${EVERY_MS} ms, ${CRASHES} crash(es) from ${BEFORE_MS / 1000} s, ${AFTER_MS / 1000} s apart (medians); seed ${values.seed}`);
  if (protocol !== undefined) console.log(`grapevine protocol overrides: ${JSON.stringify(protocol)}`);
  const results: Record<string, Result> = {};
  for (const sys of systems) {
    try {
      results[sys.label] = await run(sys, Number(values.seed));
    } finally {
      await sys.stopAll();
      setLoss(0);
    }
    await sleep(2_000);
  }
  const g = results['grapevine'];
  const s = results['serf'];
  const row = (label: string, key: keyof Result, digits: number, scale = 1): (string | number)[] => {
    const show = (r: Result | undefined): string => (r === undefined || Number.isNaN(r[key]) ? '-' : fmt(r[key] * scale, digits));
    const ratio = g !== undefined && s !== undefined && s[key] > 0 && !Number.isNaN(g[key]) ? fmt(g[key] / s[key], 2) : '-';
    return [label, show(g), show(s), ratio];
  };
  console.log(table([
    ['figure', 'grapevine', 'serf', 'grapevine/serf'],
    row('crash: first suspicion (s)', 'firstSuspectMs', 2, 1e-3),
    row('crash: first declares dead (s)', 'firstDeadMs', 2, 1e-3),
    row('crash: all declare dead (s)', 'allDeadMs', 2, 1e-3),
    row('crash: all not stopped meanwhile declare dead (s)', 'allRunningDeadMs', 2, 1e-3),
    row('false deaths of stalled members (declarations)', 'falseDeathsStalled', 0),
    row('false deaths of never-stalled members (declarations)', 'falseDeathsOther', 0),
    row('members falsely declared dead', 'membersFalselyDead', 0),
    row('members falsely suspected', 'membersFalselySuspected', 0),
    row('suspicion events about live members (grapevine: every member\'s; serf logs only its own)', 'suspicions', 0),
    row('heal: a false death alive everywhere again (s, worst)', 'healMs', 2, 1e-3),
    row('stalls applied', 'stalls', 0),
  ]));
  console.log(`\n${JSON.stringify({ n: N, loss: LOSS, stallMs: STALL_MS, everyMs: EVERY_MS, protocol, results })}`);
}
