/**
 * Clusters of real processes for the benchmarks (bench/cluster.ts, bench/chaos.ts): grapevine
 * agents and HashiCorp serf agents, each member its own process, every membership event
 * time-stamped as this process reads it. Only processes started here are ever signalled.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { createInterface } from 'node:readline';
import { AgentProcess } from '../src/cli/processes.js';

export type Kind = 'join' | 'suspect' | 'dead' | 'left' | 'alive';
export interface Observation { at: number; observer: string; kind: Kind; subject: string }

export interface Member { name: string; pid: number; running(): boolean; signal(sig: NodeJS.Signals): void; exited: Promise<unknown> }

export interface System {
  label: string;
  observations: Observation[];
  members: Member[];
  /** Starts n members; resolves with the time the last one finished joining. */
  start(n: number): Promise<{ spawnedAt: number; lastJoinedAt: number }>;
  stopAll(): Promise<void>;
}

export const WAIT_MS = 90_000;

// ---------------------------------------------------------------- grapevine

export class GrapevineCluster implements System {
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

export class SerfCluster implements System {
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
    this.children[i] = child;
    const exited = new Promise((resolve) => child.once('exit', resolve));
    this.members[i] = {
      name, pid: child.pid ?? -1, running: () => child.exitCode === null && child.signalCode === null,
      signal: (s) => { if (child.exitCode === null && child.signalCode === null) process.kill(child.pid ?? -1, s); }, exited,
    };
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

  /** Stops member `i` with SIGINT (serf's graceful leave) and starts it again `downMs` later, same name and address. */
  async restart(i: number, downMs: number): Promise<void> {
    const m = this.members[i];
    m?.signal('SIGINT');
    await m?.exited;
    await sleep(downMs);
    this.spawn(i, `127.0.0.1:${this.basePort + (i === 0 ? 1 : 0)}`);
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

export function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

export async function waitUntil(check: () => boolean, what: string, timeoutMs = WAIT_MS): Promise<number> {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(20);
  }
  return Date.now();
}

/** When `observer` first reported `kind` about `subject` at or after `since`. */
export function firstAt(sys: System, observer: string, kind: Kind, subject: string, since: number): number | undefined {
  return sys.observations.find((o) => o.observer === observer && o.kind === kind && o.subject === subject && o.at >= since)?.at;
}

/**
 * Time at which every running observer other than `subject` has reported `kind` about it. If some
 * never do within the wait, `all` is NaN (shown as "-") and the run goes on: one system's miss
 * must not end the comparison.
 */
export async function everyoneReports(sys: System, kind: Kind, subject: string, since: number): Promise<{ first: number; all: number }> {
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
