/**
 * A rolling upgrade's mixed cluster (docs/upgrades.md): a member of the previous release and one
 * of this checkout form a cluster. The previous release is the packed tarball in
 * test/fixtures/releases/ (how it was made: the README there), extracted into a temporary folder
 * with this repository's node_modules linked so its dependencies resolve; its agent runs as a
 * child process from the tarball's own bundled CLI, stopped by its PID. This release's member
 * runs in this process. With and without a keyring, each joining through the other, each
 * registers a service and must see the other member alive and the other's service, through
 * lookup and through the HTTP API. Everything on 127.0.0.1.
 */
import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { Grapevine } from '../src/index.js';
import { freePort } from './needs.js';
import { until } from './until.js';

const ROOT = join(import.meta.dirname, '..');
const PREVIOUS = '0.1.0';
const TARBALL = join(ROOT, 'test', 'fixtures', 'releases', `grapevine-registry-${PREVIOUS}.tgz`);
const dir = mkdtempSync(join(tmpdir(), 'grapevine-upgrade-'));
const pkg = join(dir, 'package');
const children: ChildProcess[] = [];

interface Line { ready?: { name: string; address: string; http?: string }; error?: { message: string }; members?: { name: string; state: string }[]; lookup?: { service: string; instances: { node: string; port: number }[] } }

/** An agent of the previous release, driven over its JSON lines (`--json`) as src/cli/processes.ts drives ours. */
class OldAgent {
  readonly lines: Line[] = [];
  readonly child: ChildProcess;
  readonly exited: Promise<unknown>;

  constructor(args: string[], keyHex?: string) {
    const env = { ...process.env };
    delete env.GRAPEVINE_KEYRING;
    delete env.GRAPEVINE_HTTP_TOKEN;
    if (keyHex !== undefined) env.GRAPEVINE_KEYRING = keyHex;
    this.child = spawn(process.execPath, [join(pkg, 'dist', 'bundle', 'src', 'cli', 'main.js'), 'agent', '--json', '--profile', 'local', '--log-level', 'error', ...args], { cwd: pkg, env, stdio: ['pipe', 'pipe', 'inherit'] });
    children.push(this.child);
    this.child.stdin?.on('error', () => undefined);
    this.exited = new Promise((resolve) => this.child.once('exit', resolve));
    createInterface({ input: this.child.stdout! }).on('line', (text) => {
      try {
        this.lines.push(JSON.parse(text) as Line);
      } catch {
        // not one of its JSON lines
      }
    });
  }

  async ready(): Promise<NonNullable<Line['ready']>> {
    await until(() => this.lines.some((l) => l.ready !== undefined || l.error !== undefined) || this.child.exitCode !== null, 20_000);
    const line = this.lines.find((l) => l.ready !== undefined || l.error !== undefined);
    if (line?.ready === undefined) throw new Error(`the ${PREVIOUS} agent did not start: ${line?.error?.message ?? `exit ${String(this.child.exitCode)}`}`);
    return line.ready;
  }

  /** Sends `command` on stdin and waits for the line `pick` finds in the answer. */
  async ask<T>(command: string, pick: (l: Line) => T | undefined): Promise<T> {
    const from = this.lines.length;
    this.child.stdin?.write(`${command}\n`);
    let found: T | undefined;
    await until(() => (found = this.lines.slice(from).map(pick).find((x) => x !== undefined)) !== undefined, 5_000);
    return found as T;
  }

  /** Asks it to close, then SIGKILLs its PID if it has not exited within 3 s. */
  async stop(): Promise<void> {
    if (this.child.exitCode !== null || this.child.signalCode !== null) return;
    this.child.stdin?.write('close\n');
    const timer = setTimeout(() => this.child.pid !== undefined && process.kill(this.child.pid, 'SIGKILL'), 3_000);
    await this.exited;
    clearTimeout(timer);
  }
}

async function getJson<T>(addr: string, path: string): Promise<T> {
  const res = await fetch(`http://${addr}${path}`);
  expect(res.status, `GET ${path} on ${addr}`).toBe(200);
  return await res.json() as T;
}

type HealthEntry = { Node: { Node: string }; Service: { Service: string; Port: number } };
type AgentMember = { Name: string; Status: number };

beforeAll(() => {
  execFileSync('tar', ['-xzf', TARBALL, '-C', dir]);
  symlinkSync(join(ROOT, 'node_modules'), join(pkg, 'node_modules'), 'dir');
});

afterAll(() => {
  for (const c of children) if (c.exitCode === null && c.signalCode === null && c.pid !== undefined) process.kill(c.pid, 'SIGKILL');
  rmSync(dir, { recursive: true, force: true });
});

describe(`a member of the previous release (${PREVIOUS}) and one of this checkout form a cluster`, () => {
  test('the tarball is that release: its version, and a CLI that runs', () => {
    expect((JSON.parse(readFileSync(join(pkg, 'package.json'), 'utf8')) as { version: string }).version).toBe(PREVIOUS);
    expect(execFileSync(process.execPath, [join(pkg, 'dist', 'bundle', 'src', 'cli', 'main.js'), '--version'], { encoding: 'utf8' }).trim()).toBe(PREVIOUS);
  });

  for (const keyring of [false, true]) {
    // Without a keyring the new member joins through the old one; with one, the old joins the new.
    const how = keyring ? 'with a keyring, the old member joining through the new' : 'without a keyring, the new member joining through the old';
    test(how, async () => {
      const key = randomBytes(32);
      const [gossip, http] = [await freePort(), await freePort()];
      const oldArgs = ['--name', 'old', '--bind', `127.0.0.1:${gossip}`, '--http', `127.0.0.1:${http}`, '--service', JSON.stringify({ name: 'old-svc', port: 9001 })];
      let current: Grapevine | undefined;
      let old: OldAgent | undefined;
      try {
        const start = (seeds: string[]): Promise<Grapevine> => Grapevine.start({
          name: 'new', bind: '127.0.0.1:0', profile: 'local', http: '127.0.0.1:0', seeds, retryJoin: false, ...(keyring ? { keyring: [key] } : {}),
        });
        if (keyring) {
          current = await start([]);
          old = new OldAgent([...oldArgs, '--seed', current.address, '--no-retry-join'], key.toString('hex'));
          await old.ready();
        } else {
          old = new OldAgent(oldArgs);
          const ready = await old.ready();
          current = await start([ready.address]);
        }
        const gv = current;
        const agent = old;
        await gv.register({ name: 'new-svc', port: 9002 });

        // This release sees the old member alive and its service, in lookups and over its HTTP API.
        await until(() => gv.members().some((m) => m.name === 'old' && m.state === 'alive') && gv.lookup('old-svc').length === 1, 15_000);
        expect(gv.lookup('old-svc').map((i) => [i.node, i.port])).toEqual([['old', 9001]]);
        const fromNew = await getJson<HealthEntry[]>(gv.listening('http') as string, '/v1/health/service/old-svc');
        expect(fromNew.map((e) => [e.Node.Node, e.Service.Port])).toEqual([['old', 9001]]);

        // The old release sees this one alive and its service, through its agent and its HTTP API.
        await until(async () => (await agent.ask('lookup new-svc', (l) => l.lookup?.service === 'new-svc' ? l.lookup.instances : undefined)).length === 1, 15_000);
        const members = await agent.ask('members', (l) => l.members);
        expect(members.find((m) => m.name === 'new')?.state).toBe('alive');
        const instances = await agent.ask('lookup new-svc', (l) => l.lookup?.service === 'new-svc' ? l.lookup.instances : undefined);
        expect(instances.map((i) => [i.node, i.port])).toEqual([['new', 9002]]);
        const fromOld = await getJson<HealthEntry[]>(`127.0.0.1:${http}`, '/v1/health/service/new-svc');
        expect(fromOld.map((e) => [e.Node.Node, e.Service.Port])).toEqual([['new', 9002]]);
        const oldMembers = await getJson<AgentMember[]>(`127.0.0.1:${http}`, '/v1/agent/members');
        expect(oldMembers.map((m) => [m.Name, m.Status]).sort()).toEqual([['new', 1], ['old', 1]]);

        // Nothing either side dropped as unreadable: the two releases speak one protocol.
        const dropped = gv.stats().core.dropped as Record<string, number>;
        expect(Object.entries(dropped).filter(([, n]) => n > 0), 'input this release dropped').toEqual([]);
      } finally {
        await old?.stop();
        await current?.close();
      }
    }, 60_000);
  }
});
