/**
 * `npm run bench:cluster`: grapevine against HashiCorp serf on 127.0.0.1, same runs, same
 * measurements, at N = 10, 30, 60, 100 (override with --sizes 10,30). One process per member for
 * both. Both use the LAN profile (probe 1 s, suspicion multiplier 4). Events are time-stamped as
 * this process reads them: grapevine agents' JSON lines, serf's log lines (memberlist logs
 * "Suspect X has failed", serf logs EventMemberJoin/Failed/Leave as memberlist reports them).
 * Bandwidth comes from the loopback interface and UDP/TCP counters in /proc (only one system
 * runs at a time), CPU from /proc/PID/stat, memory from /proc/PID/status.
 */
import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { createInterface } from 'node:readline';
import { parseArgs } from 'node:util';
import { AgentProcess } from '../src/cli/processes.js';
import { fmt, table } from './util.js';

type Kind = 'join' | 'suspect' | 'dead' | 'left' | 'alive';
interface Observation { at: number; observer: string; kind: Kind; subject: string }

interface Member { name: string; pid: number; running(): boolean; signal(sig: NodeJS.Signals): void; exited: Promise<unknown> }

interface System {
  label: string;
  observations: Observation[];
  members: Member[];
  /** Starts n members; resolves with the time the last one finished joining. */
  start(n: number): Promise<{ spawnedAt: number; lastJoinedAt: number }>;
  stopAll(): Promise<void>;
}

const WAIT_MS = 90_000;
const IDLE_MS = 20_000;
// Past the join-time push-pulls (1, 3 and 7 s after a join), so the idle window is the steady state.
const SETTLE_MS = 15_000;
/** Crash-detection trials per run; the table shows their medians. */
const CRASH_TRIALS = 3;

// ---------------------------------------------------------------- grapevine

class GrapevineCluster implements System {
  observations: Observation[] = [];
  members: Member[] = [];
  agents: AgentProcess[] = [];

  constructor(readonly label: string, private readonly protocol?: Record<string, number>) {}

  async start(n: number): Promise<{ spawnedAt: number; lastJoinedAt: number }> {
    const spawnedAt = Date.now();
    const seed = this.spawn('g0', []);
    const seedAddress = await seed.ready();
    const rest = Array.from({ length: n - 1 }, (_, i) => this.spawn(`g${i + 1}`, [seedAddress]));
    await Promise.all(rest.map((a) => a.ready(WAIT_MS)));
    const lastJoinedAt = Math.max(...this.agents.map((a) => a.lines.find((l) => l.ready !== undefined)?.at ?? 0));
    return { spawnedAt, lastJoinedAt };
  }

  private spawn(name: string, seeds: string[]): AgentProcess {
    const agent = new AgentProcess({
      name, bind: '127.0.0.1:0', seeds, profile: 'lan', compiled: true, ...(this.protocol !== undefined ? { protocol: this.protocol } : {}),
    });
    this.agents.push(agent);
    this.members.push({ name, pid: agent.pid, running: () => agent.running, signal: (s) => agent.signal(s), exited: agent.exited });
    const kinds: Record<string, Kind> = { joined: 'join', suspect: 'suspect', dead: 'dead', left: 'left', alive: 'alive' };
    let seen = 0;
    const poll = setInterval(() => {
      for (; seen < agent.lines.length; seen++) {
        const l = agent.lines[seen];
        const kind = l?.event === undefined ? undefined : kinds[l.event];
        if (l !== undefined && kind !== undefined && l.member !== undefined) this.observations.push({ at: l.at, observer: name, kind, subject: l.member });
      }
      if (!agent.running && seen >= agent.lines.length) clearInterval(poll);
    }, 20);
    return agent;
  }

  /** Transport counters and heap of every running agent. */
  async stats(): Promise<{ bytesOut: number; packetsOut: number; heapUsed: number; healthScore: number }[]> {
    return Promise.all(this.agents.filter((a) => a.running).map(async (a) => {
      const line = await a.stats();
      const t = (line.stats as { transport: Record<string, number> }).transport;
      return {
        bytesOut: (t.udpBytesOut ?? 0) + (t.tcpBytesOut ?? 0), packetsOut: t.udpPacketsOut ?? 0, heapUsed: line.heapUsed ?? 0,
        healthScore: line.healthScore ?? 0,
      };
    }));
  }

  async stopAll(): Promise<void> {
    await Promise.all(this.agents.map((a) => a.stop()));
  }
}

// ---------------------------------------------------------------- serf

const SERF_LINES: [RegExp, Kind][] = [
  [/serf: EventMemberJoin: (\S+)/, 'join'],
  [/memberlist: Suspect (\S+) has failed/, 'suspect'],
  [/serf: EventMemberFailed: (\S+)/, 'dead'],
  [/serf: EventMemberLeave: (\S+)/, 'left'],
];

class SerfCluster implements System {
  label = 'serf';
  observations: Observation[] = [];
  members: Member[] = [];
  private children: ChildProcess[] = [];
  private joined = new Map<string, number>();

  constructor(private readonly basePort: number) {}

  async start(n: number): Promise<{ spawnedAt: number; lastJoinedAt: number }> {
    const spawnedAt = Date.now();
    this.spawn(0, undefined);
    await this.waitJoined(['s0']);
    for (let i = 1; i < n; i++) this.spawn(i, `127.0.0.1:${this.basePort}`);
    const names = Array.from({ length: n }, (_, i) => `s${i}`);
    await this.waitJoined(names);
    return { spawnedAt, lastJoinedAt: Math.max(...names.map((x) => this.joined.get(x) ?? 0)) };
  }

  private spawn(i: number, join: string | undefined): void {
    const name = `s${i}`;
    const args = ['agent', `-node=${name}`, `-bind=127.0.0.1:${this.basePort + i}`, `-rpc-addr=127.0.0.1:${this.basePort + 10_000 + i}`, '-log-level=info'];
    if (join !== undefined) args.push(`-join=${join}`);
    const child = spawn('serf', args, { stdio: ['ignore', 'pipe', 'pipe'] });
    this.children.push(child);
    const exited = new Promise((resolve) => child.once('exit', resolve));
    this.members.push({
      name, pid: child.pid ?? -1, running: () => child.exitCode === null && child.signalCode === null,
      signal: (s) => { if (child.exitCode === null && child.signalCode === null) process.kill(child.pid ?? -1, s); }, exited,
    });
    createInterface({ input: child.stdout! }).on('line', (line) => {
      const at = Date.now();
      if (/agent: joined: \d+ nodes/.test(line) || (join === undefined && /EventMemberJoin: s0 /.test(line))) this.joined.set(name, at);
      for (const [re, kind] of SERF_LINES) {
        const m = re.exec(line);
        if (m !== null && m[1] !== name) this.observations.push({ at, observer: name, kind, subject: m[1] as string });
      }
    });
    createInterface({ input: child.stderr! }).on('line', (line) => process.stderr.write(`[${name}] ${line}\n`));
  }

  private async waitJoined(names: string[]): Promise<void> {
    const deadline = Date.now() + WAIT_MS;
    while (!names.every((n) => this.joined.has(n))) {
      if (Date.now() > deadline) throw new Error(`serf: ${names.filter((n) => !this.joined.has(n)).join(',')} never joined`);
      await sleep(50);
    }
  }

  async stopAll(): Promise<void> {
    for (const m of this.members) m.signal('SIGKILL');
    await Promise.all(this.members.map((m) => m.exited));
  }
}

// ---------------------------------------------------------------- measurements

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

async function waitUntil(check: () => boolean, what: string, timeoutMs = WAIT_MS): Promise<number> {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(20);
  }
  return Date.now();
}

/** When `observer` first reported `kind` about `subject` at or after `since`. */
function firstAt(sys: System, observer: string, kind: Kind, subject: string, since: number): number | undefined {
  return sys.observations.find((o) => o.observer === observer && o.kind === kind && o.subject === subject && o.at >= since)?.at;
}

/**
 * Time at which every running observer other than `subject` has reported `kind` about it. If some
 * never do within the wait, `all` is NaN (shown as "-") and the run goes on: one system's miss
 * must not end the comparison.
 */
async function everyoneReports(sys: System, kind: Kind, subject: string, since: number): Promise<{ first: number; all: number }> {
  const observers = (): string[] => sys.members.filter((m) => m.running() && m.name !== subject).map((m) => m.name);
  const seen = (): number[] => observers().flatMap((o) => firstAt(sys, o, kind, subject, since) ?? []);
  try {
    await waitUntil(() => seen().length === observers().length, `${sys.label}: everyone to see ${subject} ${kind}`);
  } catch (e) {
    console.log(`  ${(e as Error).message}: ${seen().length} of ${observers().length} did`);
    const times = seen();
    return { first: times.length > 0 ? Math.min(...times) - since : Number.NaN, all: Number.NaN };
  }
  const times = seen();
  return { first: Math.min(...times) - since, all: Math.max(...times) - since };
}

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
  console.log('\n"grapevine" and "serf" run the same LAN parameters (probe 1 s, timeout 500 ms, suspicion multiplier 4).');
  console.log('"grapevine 500 ms" halves the probe interval and timeout, spending the bandwidth its smaller packets save;');
  console.log('its suspicion timeout scales with the probe interval, as memberlist\'s formula does.');
  console.log(`\n${JSON.stringify({ baseline, results: all })}`);
}

await main();
