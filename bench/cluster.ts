/**
 * `npm run bench:cluster`: grapevine against HashiCorp serf on 127.0.0.1, same runs, same
 * measurements, at N = 10, 30, 60, 100 (override with --sizes 10,30). One process per member for
 * both. Both use the LAN profile (probe 1 s; serf's suspicion multiplier 4, grapevine's pause tolerance 3 s). Events are time-stamped as
 * this process reads them: grapevine agents' JSON lines, serf's log lines (memberlist logs
 * "Suspect X has failed", serf logs EventMemberJoin/Failed/Leave as memberlist reports them).
 * Bandwidth comes from the loopback interface and UDP/TCP counters in /proc (only one system
 * runs at a time), CPU from /proc/PID/stat, memory from /proc/PID/status.
 */
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { everyoneReports, firstAt, GrapevineCluster, SerfCluster, sleep, type System, waitUntil } from './clusters.js';
import { fmt, table } from './util.js';

const IDLE_MS = 20_000;
// Past the join-time push-pulls (1, 3 and 7 s after a join), so the idle window is the steady state.
const SETTLE_MS = 15_000;
/** Crash-detection trials per run; the table shows their medians. */
const CRASH_TRIALS = 3;

function loopback(): { bytes: number; packets: number } {
  const line = readFileSync('/proc/net/dev', 'utf8').split('\n').find((l) => l.trim().startsWith('lo:')) ?? '';
  const f = line.split(':')[1]?.trim().split(/\s+/).map(Number) ?? [];
  return { bytes: f[8] ?? 0, packets: f[9] ?? 0 }; // transmit side; on lo every packet is sent once
}

function snmp(): { udpOut: number; tcpOut: number } {
  const lines = readFileSync('/proc/net/snmp', 'utf8').split('\n');
  const row = (proto: string): Record<string, number> => {
    const [head, values] = lines.filter((l) => l.startsWith(`${proto}:`));
    const keys = head?.split(/\s+/).slice(1) ?? [];
    const vals = values?.split(/\s+/).slice(1).map(Number) ?? [];
    return Object.fromEntries(keys.map((k, i) => [k, vals[i] ?? 0]));
  };
  return { udpOut: row('Udp').OutDatagrams ?? 0, tcpOut: row('Tcp').OutSegs ?? 0 };
}

const TICKS_PER_SECOND = Number(execFileSync('getconf', ['CLK_TCK']).toString().trim()) || 100;

function cpuTicks(pid: number): number {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return Number(fields[11]) + Number(fields[12]); // utime + stime
  } catch {
    return 0;
  }
}

function rssBytes(pid: number): number {
  try {
    const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return Number(m?.[1] ?? 0) * 1024;
  } catch {
    return 0;
  }
}

interface Figures {
  convergeMs: number; joinTotalMs: number; firstSuspectMs: number; firstDeadMs: number; allDeadMs: number; allLeftMs: number;
  falseSuspects: number; falseDeaths: number; cpuPercent: number; loBytesPerS: number; loPacketsPerS: number;
  udpPerS: number; tcpPerS: number; rssMb: number; payloadBytesPerS?: number; heapMb?: number;
  /** Lifeguard health scores just before the crash: above 0 means slowed probing. */
  healthMean?: number; healthMax?: number;
}

async function measure(sys: System, n: number): Promise<Figures> {
  const { spawnedAt, lastJoinedAt } = await sys.start(n);
  const names = sys.members.map((m) => m.name);
  const convergedAt = await waitUntil(() => names.every((o) => names.every((s) => s === o || firstAt(sys, o, 'join', s, 0) !== undefined)),
    `${sys.label}: every member to see all ${n}`);
  await sleep(SETTLE_MS);

  // Idle window: nothing but the protocol runs.
  const g = sys instanceof GrapevineCluster ? sys : undefined;
  const statsBefore = await g?.stats();
  const idleStart = Date.now();
  const lo0 = loopback();
  const snmp0 = snmp();
  const cpu0 = sys.members.map((m) => cpuTicks(m.pid));
  await sleep(IDLE_MS);
  const lo1 = loopback();
  const snmp1 = snmp();
  const cpu1 = sys.members.map((m) => cpuTicks(m.pid));
  const idleEnd = Date.now();
  const statsAfter = await g?.stats();
  const seconds = (idleEnd - idleStart) / 1000;
  const inIdle = sys.observations.filter((o) => o.at >= idleStart && o.at <= idleEnd);
  const rss = sys.members.map((m) => rssBytes(m.pid));

  // Crash detection, CRASH_TRIALS times (one victim at a time): the first suspicion depends on
  // where the victim sat in everyone's probe order, so one trial is noisy. Medians are reported.
  const trials: { firstSuspect: number; first: number; all: number }[] = [];
  for (let t = 0; t < CRASH_TRIALS; t++) {
    const victim = names[n - 1 - t * 2] as string;
    const killedAt = Date.now();
    sys.members.find((m) => m.name === victim)?.signal('SIGKILL');
    const dead = await everyoneReports(sys, 'dead', victim, killedAt);
    const suspicions = sys.observations.filter((o) => o.kind === 'suspect' && o.subject === victim && o.at >= killedAt).map((o) => o.at - killedAt);
    trials.push({ firstSuspect: suspicions.length > 0 ? Math.min(...suspicions) : Number.NaN, first: dead.first, all: dead.all });
  }
  const med = (pick: (x: (typeof trials)[number]) => number): number => {
    const xs = trials.map(pick).sort((a, b) => a - b);
    return xs[Math.floor(xs.length / 2)] as number;
  };

  const leaver = names[n - 2] as string;
  const leftAt = Date.now();
  sys.members.find((m) => m.name === leaver)?.signal('SIGINT');
  const left = await everyoneReports(sys, 'left', leaver, leftAt);
  if (left.all > 3_000) {
    // Slow leaves have been seen once in a while: show what the late observers reported about the leaver.
    for (const m of sys.members.filter((x) => x.running() && x.name !== leaver)) {
      const seen = sys.observations.filter((o) => o.observer === m.name && o.subject === leaver && o.at >= leftAt - 30_000);
      if ((firstAt(sys, m.name, 'left', leaver, leftAt) ?? 0) - leftAt > 3_000) {
        console.log(`  late: ${m.name} saw ${seen.map((o) => `${o.kind}@${o.at - leftAt}ms`).join(', ')}`);
      }
    }
  }
  await sys.stopAll();

  const sum = (xs: number[]): number => xs.reduce((a, b) => a + b, 0);
  const perNode = (x: number): number => x / n / seconds;
  return {
    convergeMs: convergedAt - lastJoinedAt,
    joinTotalMs: convergedAt - spawnedAt,
    firstSuspectMs: med((x) => x.firstSuspect),
    firstDeadMs: med((x) => x.first),
    allDeadMs: med((x) => x.all),
    allLeftMs: left.all,
    falseSuspects: new Set(inIdle.filter((o) => o.kind === 'suspect').map((o) => o.subject)).size,
    falseDeaths: inIdle.filter((o) => o.kind === 'dead').length,
    cpuPercent: (100 * sum(cpu1.map((c, i) => c - (cpu0[i] ?? 0)))) / TICKS_PER_SECOND / n / seconds,
    loBytesPerS: perNode(lo1.bytes - lo0.bytes),
    loPacketsPerS: perNode(lo1.packets - lo0.packets),
    udpPerS: perNode(snmp1.udpOut - snmp0.udpOut),
    tcpPerS: perNode(snmp1.tcpOut - snmp0.tcpOut),
    rssMb: sum(rss) / n / 2 ** 20,
    ...(statsBefore !== undefined && statsAfter !== undefined ? {
      payloadBytesPerS: perNode(sum(statsAfter.map((s) => s.bytesOut)) - sum(statsBefore.map((s) => s.bytesOut))),
      heapMb: sum(statsAfter.map((s) => s.heapUsed)) / statsAfter.length / 2 ** 20,
      healthMean: sum(statsAfter.map((s) => s.healthScore)) / statsAfter.length,
      healthMax: Math.max(...statsAfter.map((s) => s.healthScore)),
    } : {}),
  };
}

/** Heap and RSS of a bare Node process, so grapevine's own share can be told apart. */
function nodeBaseline(): { rssMb: number; heapMb: number } {
  const out = execFileSync(process.execPath, ['-e', 'setTimeout(() => { const m = process.memoryUsage(); console.log(JSON.stringify(m)); }, 300)']).toString();
  const m = JSON.parse(out) as { rss: number; heapUsed: number };
  return { rssMb: m.rss / 2 ** 20, heapMb: m.heapUsed / 2 ** 20 };
}

async function main(): Promise<void> {
  const { values } = parseArgs({ options: { sizes: { type: 'string', default: '10,30,60,100' }, 'skip-fast': { type: 'boolean', default: false } } });
  const sizes = (values.sizes ?? '').split(',').map(Number).filter((x) => Number.isInteger(x) && x >= 3 && x <= 200);
  try {
    execFileSync('serf', ['version']);
  } catch {
    console.error('serf is not installed: run `apt-get install -y serf` (Debian package, HashiCorp serf on memberlist).');
    process.exit(2);
  }
  const baseline = nodeBaseline();
  console.log(`grapevine vs serf on 127.0.0.1, one process per member, LAN profile; idle window ${IDLE_MS / 1000} s`);
  console.log(`bare node process: RSS ${fmt(baseline.rssMb, 1)} MB, heap used ${fmt(baseline.heapMb, 1)} MB`);
  const all: Record<string, unknown>[] = [];
  for (const n of sizes) {
    const results: Record<string, Figures> = {};
    const systems: System[] = [
      new GrapevineCluster('grapevine'),
      new SerfCluster(21_000),
      // Same bandwidth budget spent on probing twice as often (see the note under the table).
      ...(values['skip-fast'] === true ? [] : [new GrapevineCluster('grapevine 500 ms', { probeIntervalMs: 500, probeTimeoutMs: 250 })]),
    ];
    // Rotate which system goes first, so drift in machine load does not favour one.
    const order = systems.map((_, i) => systems[(i + all.length) % systems.length] as System);
    for (const sys of order) {
      try {
        results[sys.label] = await measure(sys, n);
      } finally {
        await sys.stopAll();
      }
      await sleep(2_000);
    }
    const gv = results.grapevine as Figures;
    const sf = results.serf as Figures;
    const fast = results['grapevine 500 ms'] ?? ({} as Figures);
    const row = (label: string, key: keyof Figures, digits: number, scale = 1): (string | number)[] => {
      const value = (f: Figures): number => (f[key] ?? Number.NaN) as number;
      const show = (x: number): string => (Number.isNaN(x) ? '-' : fmt(x * scale, digits));
      const ratio = (x: number): string => (value(sf) === 0 || Number.isNaN(value(sf)) || Number.isNaN(x) ? '-' : fmt(x / value(sf), 2));
      return [label, show(value(gv)), show(value(sf)), ratio(value(gv)), show(value(fast)), ratio(value(fast))];
    };
    console.log(`\n## N = ${n}`);
    console.log(table([
      ['figure', 'grapevine', 'serf', 'grapevine/serf', 'grapevine 500 ms', '500 ms/serf'],
      row('join: all see all, after last join (s)', 'convergeMs', 2, 1e-3),
      row('join: all see all, from first spawn (s)', 'joinTotalMs', 2, 1e-3),
      row('crash: first suspicion (s, median of 3)', 'firstSuspectMs', 2, 1e-3),
      row('crash: first declares dead (s, median of 3)', 'firstDeadMs', 2, 1e-3),
      row('crash: all declare dead (s, median of 3)', 'allDeadMs', 2, 1e-3),
      row('leave: all see left (s)', 'allLeftMs', 2, 1e-3),
      row('idle: members falsely suspected', 'falseSuspects', 0),
      row('idle: false deaths', 'falseDeaths', 0),
      row('idle: CPU % per node', 'cpuPercent', 3),
      row('idle: loopback bytes/s per node', 'loBytesPerS', 0),
      row('idle: loopback packets/s per node', 'loPacketsPerS', 2),
      row('idle: UDP datagrams/s per node', 'udpPerS', 2),
      row('idle: TCP segments/s per node', 'tcpPerS', 2),
      row('RSS per node (MB)', 'rssMb', 1),
      row('grapevine payload bytes/s per node (transport)', 'payloadBytesPerS', 0),
      row('grapevine heap used per process (MB)', 'heapMb', 2),
      row('grapevine health score before the crash, mean', 'healthMean', 2),
      row('grapevine health score before the crash, max', 'healthMax', 0),
    ]));
    all.push({ n, ...results });
  }
  console.log('\n"grapevine" and "serf" probe alike (LAN: every 1 s, timeout 500 ms); serf\'s suspicion timeout follows memberlist\'s');
  console.log('formula (multiplier 4), grapevine\'s its 3 s pause tolerance (docs/core.md, "Protocol parameters").');
  console.log('"grapevine 500 ms" halves the probe interval and timeout, spending the bandwidth its smaller packets save,');
  console.log('with the same pause tolerance.');
  console.log(`\n${JSON.stringify({ baseline, results: all })}`);
}

await main();
