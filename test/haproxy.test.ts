/**
 * HAProxy (Debian 2.6) fills a backend from grapevine's SRV records (`resolvers` and
 * `server-template`): requests through it reach the registered instances, a SIGKILLed
 * member's instance leaves the backend, a newly registered one joins it. All on 127.0.0.1,
 * HAProxy started on free ports and stopped by its PID.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { AgentProcess } from '../src/cli/processes.js';
import { Grapevine } from '../src/index.js';
import { available, freePort, runs, stopProgram } from './needs.js';
import { until } from './until.js';

const HAPROXY = '/usr/sbin/haproxy';
const hasHaproxy = available('haproxy', runs(HAPROXY, ['-v']), 'apt-get install -y haproxy');

let a: Grapevine;
let b: Grapevine;
let victim: AgentProcess;
let haproxy: ChildProcess | undefined;
let dir = '';
let front = 0;
const servers: Server[] = [];

async function web(name: string): Promise<number> {
  const s = createServer((_req, res) => res.end(name));
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
  servers.push(s);
  return (s.address() as { port: number }).port;
}

/** Which backends answer `count` requests through HAProxy (failures count as ""). */
async function through(count: number): Promise<Set<string>> {
  const seen = new Set<string>();
  for (let i = 0; i < count; i++) {
    const res = await fetch(`http://127.0.0.1:${front}/`, { signal: AbortSignal.timeout(2_000) }).catch(() => undefined);
    seen.add(res?.ok === true ? await res.text() : '');
  }
  return seen;
}

describe.skipIf(!hasHaproxy)('HAProxy backends from SRV records', () => {
  beforeAll(async () => {
    a = await Grapevine.start({ name: 'hap-a', bind: '127.0.0.1:0', profile: 'local', dns: '127.0.0.1:0' });
    b = await Grapevine.start({ name: 'hap-b', bind: '127.0.0.1:0', profile: 'local', seeds: [a.address] });
    const [p1, p2] = [await web('one'), await web('two')];
    victim = new AgentProcess({ name: 'hap-victim', bind: '127.0.0.1:0', seeds: [a.address], profile: 'local', services: [{ name: 'web', port: p1 }] });
    await victim.ready();
    await b.register({ name: 'web', id: 'two', port: p2 });
    await until(() => a.lookup('web').length === 2, 20_000);
    front = await freePort();
    dir = mkdtempSync(join(tmpdir(), 'grapevine-haproxy-'));
    writeFileSync(join(dir, 'haproxy.cfg'), `
global
  maxconn 256
defaults
  mode http
  timeout connect 1s
  timeout client 5s
  timeout server 5s
resolvers grapevine
  nameserver local ${a.listening('dns') as string}
  accepted_payload_size 4096
  resolve_retries 2
  timeout resolve 500ms
  timeout retry 500ms
  hold valid 500ms
  hold obsolete 1s
  hold nx 500ms
  hold other 500ms
frontend web
  bind 127.0.0.1:${front}
  default_backend web
backend web
  balance roundrobin
  server-template web 4 _web._tcp.service.grapevine resolvers grapevine resolve-prefer ipv4
`);
    haproxy = spawn(HAPROXY, ['-f', join(dir, 'haproxy.cfg'), '-db'], { stdio: 'ignore' });
  }, 60_000);

  afterAll(async () => {
    await stopProgram(haproxy);
    await victim?.stop();
    for (const s of servers) s.close();
    await Promise.all([a?.close(), b?.close()]);
    if (dir !== '') rmSync(dir, { recursive: true, force: true });
  });

  test('requests reach the registered instances; a SIGKILLed one leaves the backend; a new one joins', async () => {
    await until(async () => {
      const seen = await through(8);
      return seen.has('one') && seen.has('two');
    }, 30_000);
    victim.signal('SIGKILL');
    const killedAt = Date.now();
    await until(async () => {
      const seen = await through(8);
      return !seen.has('one') && seen.has('two') && !seen.has('');
    }, 30_000);
    console.log(`HAProxy dropped the SIGKILLed instance ${((Date.now() - killedAt) / 1000).toFixed(1)} s after the kill (detection, then hold obsolete 1 s)`);
    const p3 = await web('three');
    await b.register({ name: 'web', id: 'three', port: p3 });
    await until(async () => (await through(8)).has('three'), 30_000);
    expect(await through(12)).toEqual(new Set(['two', 'three']));
  }, 120_000);
});
