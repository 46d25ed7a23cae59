/**
 * `npm run bench:churn`: a rolling restart of real processes on 127.0.0.1. N agents (30; --members)
 * each register one instance of `web`, served by an HTTP server of this process that stands for
 * the agent's application: it stops while the agent is down, as the application would. A client
 * member in this process looks `web` up every 20 ms and sends steady GETs through the undici
 * dispatcher. Each agent in turn gets SIGTERM (a graceful leave), stays down --downS (2), and
 * starts again under its name at its address. Per restart: instances of a stopped agent still
 * returned more than 1 s after it exited (dead instances served), failed requests, time with no
 * instance at all (lookup gaps), time until every other member reports the new life joined, and
 * the most `joined` events one observer reported about it. With `serf` on PATH, the same rolling
 * restart of serf agents (SIGINT, serf's graceful leave): when everyone reported the leave and the
 * rejoin. Every loop is bounded; only processes started here are signalled, by PID.
 */
import { execFileSync } from 'node:child_process';
import { createServer, type Server } from 'node:http';
import { parseArgs } from 'node:util';
import { request } from 'undici';
import { AgentProcess } from '../src/cli/processes.js';
import { createDispatcher } from '../src/client/undici.js';
import { Grapevine } from '../src/index.js';
import { freePort } from '../test/needs.js';
import { SerfCluster, sleep, waitUntil } from './clusters.js';
import { fmt, median, table } from './util.js';

const { values } = parseArgs({ options: { members: { type: 'string', default: '30' }, downS: { type: 'string', default: '2' } } });
const N = Number(values.members);
const DOWN_MS = Number(values.downS) * 1_000;
/** An instance still returned this long after its agent exited counts as a dead instance served. */
const GRACE_MS = 1_000;
const SAMPLE_MS = 20;
/** Longest wait for a restarted member to be seen by everyone. */
const VISIBLE_WAIT_MS = 30_000;

interface Row {
  name: string; deadServed: number; failed: number; requests: number; gapMs: number; visibleMs: number; maxJoined: number; readyMs: number;
  /** Other members that had not reported the leave 1 s after the stop signal: they showed it alive while it was gone. */
  staleObservers: number;
}

/** One table row; `traffic` false for a system without a client (serf): no requests, no lookups. */
function summary(rows: Row[], label: string, traffic = true): string[] {
  const visible = rows.map((r) => r.visibleMs).filter((v) => !Number.isNaN(v));
  const sum = (pick: (r: Row) => number): number => rows.reduce((a, r) => a + pick(r), 0);
  return [label, String(sum((r) => r.staleObservers)), traffic ? String(sum((r) => r.deadServed)) : '-', traffic ? `${sum((r) => r.failed)} of ${sum((r) => r.requests)}` : '-',
    traffic ? fmt(sum((r) => r.gapMs)) : '-', visible.length === 0 ? '-' : `${fmt(median(visible))} / ${fmt(Math.max(...visible))}`,
    `${visible.length} of ${rows.length}`, String(Math.max(0, ...rows.map((r) => r.maxJoined))), traffic ? fmt(median(rows.map((r) => r.readyMs))) : '-'];
}

async function grapevine(): Promise<Row[]> {
  const ports = await Promise.all(Array.from({ length: N }, () => freePort()));
  const appPorts = await Promise.all(Array.from({ length: N }, () => freePort()));
  const addr = (i: number): string => `127.0.0.1:${ports[i]}`;
  const seeds = [0, 1, 2].filter((i) => i < N).map(addr);
  const servers: (Server | undefined)[] = new Array(N);
  const serve = async (i: number): Promise<void> => {
    const s = createServer((_req, res) => res.end('ok'));
    await new Promise<void>((r) => s.listen(appPorts[i], '127.0.0.1', r));
    servers[i] = s;
  };
  const agents: AgentProcess[] = new Array(N);
  const spawn = (i: number): AgentProcess => {
    const agent = new AgentProcess({
      name: `g${i}`, bind: addr(i), seeds: seeds.filter((s) => s !== addr(i)), profile: 'lan', compiled: true,
      services: [{ name: 'web', id: `web-${i}`, port: appPorts[i] }],
    });
    agents[i] = agent;
    return agent;
  };
  for (let i = 0; i < N; i++) await serve(i);
  for (let i = 0; i < N; i++) spawn(i);
  await Promise.all(agents.map((a) => a.ready(60_000)));
  const client = await Grapevine.start({ name: 'client', bind: '127.0.0.1:0', seeds, profile: 'lan' });
  const dispatcher = createDispatcher(client);
  const clientJoins: { at: number; member: string }[] = [];
  client.on('joined', (m) => clientJoins.push({ at: Date.now(), member: m.name }));
  await waitUntil(() => client.lookup('web').length === N, 'the client to see every instance');

  /** When each agent's process last exited (undefined while it runs). */
  const downSince = new Map<string, number>();
  let deadServed = 0;
  let gapMs = 0;
  let failed = 0;
  let requests = 0;
  let running = true;
  const sampler = (async () => {
    for (let i = 0; running && i < 1_000_000; i++) {
      const instances = client.lookup('web');
      if (instances.length === 0) gapMs += SAMPLE_MS;
      const now = Date.now();
      for (const inst of instances) if (now - (downSince.get(inst.node) ?? now) > GRACE_MS) deadServed++;
      await sleep(SAMPLE_MS);
    }
  })();
  const load = (async () => {
    for (let i = 0; running && i < 10_000_000; i++) {
      requests++;
      try {
        const res = await request('http://web/', { dispatcher });
        await res.body.text();
        if (res.statusCode !== 200) failed++;
      } catch {
        failed++;
      }
      await sleep(2);
    }
  })();

  const rows: Row[] = [];
  try {
    for (let i = 0; i < N; i++) {
      const name = `g${i}`;
      const before = { deadServed, failed, requests, gapMs };
      const t0 = Date.now();
      agents[i]?.signal('SIGTERM');
      await agents[i]?.exited;
      downSince.set(name, Date.now());
      await new Promise((r) => servers[i]?.close(r));
      await sleep(DOWN_MS);
      await serve(i);
      downSince.delete(name);
      const started = Date.now();
      await spawn(i).ready(60_000);
      const readyMs = Date.now() - started;
      // Everyone: every other agent's joined line about it since the stop, and the client's.
      const observers = agents.filter((a, j) => j !== i && a.running);
      const joinsOf = (a: AgentProcess): number => a.lines.filter((l) => l.event === 'joined' && l.member === name && l.at >= t0).length;
      let visibleMs = Number.NaN;
      try {
        const at = await waitUntil(() => observers.every((a) => joinsOf(a) > 0) && clientJoins.some((j) => j.member === name && j.at >= t0), `everyone to see ${name} back`, VISIBLE_WAIT_MS);
        visibleMs = at - started;
      } catch (e) {
        console.log(`  ${(e as Error).message}`);
      }
      await sleep(1_000);
      const clientJoined = clientJoins.filter((j) => j.member === name && j.at >= t0).length;
      const leftAt = (a: AgentProcess): number => a.lines.find((l) => (l.event === 'left' || l.event === 'dead') && l.member === name && l.at >= t0)?.at ?? Number.POSITIVE_INFINITY;
      const staleObservers = observers.filter((a) => leftAt(a) - t0 > GRACE_MS).length;
      rows.push({
        name, deadServed: deadServed - before.deadServed, failed: failed - before.failed, requests: requests - before.requests, gapMs: gapMs - before.gapMs,
        visibleMs, maxJoined: Math.max(clientJoined, ...observers.map(joinsOf)), readyMs, staleObservers,
      });
    }
  } finally {
    running = false;
    await Promise.all([sampler, load]);
    await dispatcher.close();
    await client.close();
    await Promise.all(agents.map((a) => a.stop()));
    for (const s of servers) s?.close();
  }
  return rows;
}

/** serf's rolling restart: SIGINT (a graceful leave), down DOWN_MS, back under its name and address. */
async function serf(): Promise<Row[]> {
  const cluster = new SerfCluster(21_000); // as bench:cluster; serf's RPC ports are 10,000 above
  await cluster.start(N);
  const rows: Row[] = [];
  try {
    for (let i = 0; i < N; i++) {
      const name = `s${i}`;
      const t0 = Date.now();
      await cluster.restart(i, DOWN_MS);
      const started = Date.now(); // restart() spawns the new process just before it returns
      const others = (): string[] => cluster.members.filter((m) => m.running() && m.name !== name).map((m) => m.name);
      const joinsOf = (o: string): number => cluster.observations.filter((x) => x.observer === o && x.subject === name && x.kind === 'join' && x.at >= t0).length;
      let visibleMs = Number.NaN;
      try {
        visibleMs = await waitUntil(() => others().every((o) => joinsOf(o) > 0), `serf: everyone to see ${name} back`, VISIBLE_WAIT_MS) - started;
      } catch (e) {
        console.log(`  ${(e as Error).message}`);
      }
      await sleep(1_000);
      // While it was down: members that had not reported its leave (or failure) within GRACE_MS showed it alive while dead.
      const leftBy = (o: string): number | undefined => cluster.observations.find((x) => x.observer === o && x.subject === name && (x.kind === 'left' || x.kind === 'dead') && x.at >= t0)?.at;
      const stale = others().filter((o) => (leftBy(o) ?? Number.POSITIVE_INFINITY) - t0 > GRACE_MS).length;
      rows.push({ name, deadServed: 0, failed: 0, requests: 0, gapMs: 0, visibleMs, maxJoined: Math.max(0, ...others().map(joinsOf)), readyMs: Number.NaN, staleObservers: stale });
    }
  } finally {
    await cluster.stopAll();
  }
  return rows;
}

function hasSerf(): boolean {
  try {
    execFileSync('serf', ['version'], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

console.log(`## churn: rolling restart of ${N} agents on 127.0.0.1, each down ${DOWN_MS / 1000} s, LAN profile, node ${process.version}`);
const ours = await grapevine();
const header = ['system', 'members slower than 1 s to report a leave', 'dead instances served (client samples)', 'failed requests', 'lookup gaps ms', 'new life seen by all, ms after its spawn (median / max)', 'restarts seen by all', 'most joined per observer', 'spawn to ready ms (median)'];
const lines = [header, summary(ours, 'grapevine')];
if (hasSerf()) lines.push(summary(await serf(), 'serf', false));
else console.log('serf not installed (apt-get install -y serf): grapevine alone');
console.log(table(lines));
console.log('\nper restart (grapevine):');
console.log(table([['member', 'slow to see the leave', 'dead served', 'failed', 'requests', 'gap ms', 'seen by all ms', 'most joined', 'spawn to ready ms'],
  ...ours.map((r) => [r.name, String(r.staleObservers), String(r.deadServed), String(r.failed), String(r.requests), fmt(r.gapMs), fmt(r.visibleMs), String(r.maxJoined), fmt(r.readyMs)])]));
