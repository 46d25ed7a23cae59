/**
 * The data directory (src/persist/): what a member was told survives its restart — persisted
 * registrations and checks, its name, its keyring as rotated, the members it last saw (its
 * seeds next time) — and a file it cannot use stops the start, naming the file. Members on
 * 127.0.0.1, directories under the system's temporary directory; every wait is bounded.
 */
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, test } from 'vitest';
import { AgentProcess } from '../src/cli/processes.js';
import { DataDirError, Grapevine, type GrapevineOptions } from '../src/index.js';
import { until } from './until.js';

const dirs: string[] = [];
const running: Grapevine[] = [];

async function tempDir(): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'grapevine-data-'));
  dirs.push(dir);
  return dir;
}

async function start(options: GrapevineOptions): Promise<Grapevine> {
  const gv = await Grapevine.start({ bind: '127.0.0.1:0', profile: 'local', ...options });
  running.push(gv);
  return gv;
}

afterEach(async () => {
  await Promise.all(running.splice(0).map((gv) => gv.close()));
  await Promise.all(dirs.splice(0).map((d) => rm(d, { recursive: true, force: true })));
});

const key = (b: number): Uint8Array => new Uint8Array(32).fill(b);

describe('the data directory', () => {
  test('persisted registrations and checks come back after a restart, under the saved name; others do not', async () => {
    const dataDir = await tempDir();
    const first = await start({ name: 'keeper', dataDir });
    await first.register({ name: 'web', id: 'web-1', port: 8080, tags: ['v1'], persist: true, check: { ttlMs: 60_000, name: 'beat' } });
    await first.register({ name: 'web', id: 'web-2', port: 8081 });
    await first.addCheck({ id: 'disk', ttlMs: 60_000, serviceId: 'web-1', persist: true });
    await first.register({ name: 'gone', port: 1, persist: true });
    await first.deregister('gone');
    await first.close();

    const saved = JSON.parse(await readFile(join(dataDir, 'services.json'), 'utf8')) as { grapevine: string; services: { id: string }[]; checks: { id: string }[] };
    expect(saved.grapevine).toBe('services');
    expect(saved.services.map((s) => s.id)).toEqual(['web-1']);
    expect(saved.checks.map((c) => c.id)).toEqual(['disk']);

    const second = await start({ dataDir });
    expect(second.name).toBe('keeper');
    const web = second.lookup('web', { healthy: false });
    expect(web.map((i) => i.id)).toEqual(['web-1']);
    expect(web[0]?.tags).toEqual(['v1']);
    expect(second.check('disk')?.type).toBe('ttl');
    expect(second.check('service:web-1')?.name).toBe('beat');
    // Still kept: deregistering now removes it from the file too.
    await second.deregister('web-1');
    await second.close();
    const after = JSON.parse(await readFile(join(dataDir, 'services.json'), 'utf8')) as { services: unknown[]; checks: unknown[] };
    expect(after).toMatchObject({ services: [], checks: [] });
  });

  test('a function check cannot be persisted', async () => {
    const gv = await start({});
    await expect(gv.register({ name: 'f', port: 1, persist: true, check: { run: () => true, intervalMs: 1_000 } })).rejects.toThrow(/persist: a function check/);
  });

  test('the keyring as rotated outlives the keys a member is started with', async () => {
    const dataDir = await tempDir();
    const first = await start({ dataDir, keyring: [key(1)] });
    first.keyring?.add(key(2));
    first.keyring?.use(key(2));
    first.keyring?.remove(key(1));
    await first.close();
    const keyring = await readFile(join(dataDir, 'keyring.json'), 'utf8');
    expect(JSON.parse(keyring)).toMatchObject({ grapevine: 'keyring', format: 1, keys: [Buffer.from(key(2)).toString('base64')] });

    const second = await start({ dataDir, keyring: [key(1)] });
    expect(second.keyring?.keys()).toEqual([key(2)]);
    // A member holding only the old key cannot talk to it: the saved key is really the one in use.
    const joinOld = await Grapevine.start({ bind: '127.0.0.1:0', profile: 'local', keyring: [key(1)], seeds: [second.address], joinTimeoutMs: 1_500 }).catch((e: Error) => e);
    expect(joinOld).toBeInstanceOf(Error);
    const joinNew = await start({ keyring: [key(2)], seeds: [second.address] });
    expect(joinNew.member(second.name)?.state).toBe('alive');
  });

  test('a restart rejoins through the members last seen, without seeds', async () => {
    const aDir = await tempDir();
    const bDir = await tempDir();
    const a = await start({ name: 'a', dataDir: aDir });
    const b = await start({ name: 'b', dataDir: bDir, seeds: [a.address] });
    await until(() => a.members().length === 2);
    await b.close();
    const saved = JSON.parse(await readFile(join(bDir, 'members.json'), 'utf8')) as { members: { name: string; addr: string }[] };
    expect(saved.members).toEqual([{ name: 'a', addr: a.address }]);
    const again = await start({ dataDir: bDir });
    expect(again.name).toBe('b');
    await until(() => again.member('a')?.state === 'alive' && a.member('b')?.state === 'alive');
  });

  test('a corrupt or foreign file stops the start, names the file, and is left as it was', async () => {
    const dataDir = await tempDir();
    const services = join(dataDir, 'services.json');
    await writeFile(services, '{"grapevine":"services","format":1,"services":[{"name":"web"');
    const corrupt = await start({ dataDir }).catch((e: unknown) => e);
    expect(corrupt).toBeInstanceOf(DataDirError);
    expect((corrupt as DataDirError).file).toBe(services);
    expect((corrupt as Error).message).toMatch(/services\.json: is not JSON/);
    expect(await readFile(services, 'utf8')).toBe('{"grapevine":"services","format":1,"services":[{"name":"web"');

    await writeFile(services, '{"some":"other program"}');
    await expect(start({ dataDir })).rejects.toThrow(/services\.json: is not a grapevine services file/);
    await writeFile(services, '{"grapevine":"services","format":7,"services":[],"checks":[]}');
    await expect(start({ dataDir })).rejects.toThrow(/has format 7/);
    await writeFile(services, '{"grapevine":"services","format":1,"services":[{"name":"web","port":99999}],"checks":[]}');
    await expect(start({ dataDir })).rejects.toThrow(/services\.json: service 1: service\.port/);
    await writeFile(join(dataDir, 'keyring.json'), '{"grapevine":"keyring","format":1,"keys":["c2hvcnQ="]}');
    await expect(start({ dataDir })).rejects.toThrow(/keyring\.json: key 1 is not 32 bytes/);
  });

  test('one member per directory: a second is refused while the first runs, and may start after it closed', async () => {
    const dataDir = await tempDir();
    const first = await start({ dataDir });
    await expect(start({ dataDir })).rejects.toThrow(/is in use by process \d+ \(this one: another member\)/);
    await first.close();
    const second = await start({ dataDir });
    expect(second.name).toBe(first.name);
  });

  test('the agent keeps what its HTTP API registered across a restart', async () => {
    const dataDir = await tempDir();
    const run = async (): Promise<AgentProcess> => {
      const agent = new AgentProcess({ name: 'persisting', bind: '127.0.0.1:0', http: '127.0.0.1:0', flags: ['--data-dir', dataDir] });
      await agent.ready();
      return agent;
    };
    const first = await run();
    const http = (first.lines.find((l) => l.ready !== undefined)?.ready?.http) as string;
    const put = await fetch(`http://${http}/v1/agent/service/register`, {
      method: 'PUT', body: JSON.stringify({ Name: 'api', ID: 'api-1', Port: 9000, Check: { TTL: '30s', Name: 'api alive' } }),
    });
    expect(put.status).toBe(200);
    await until(async () => (JSON.parse(await readFile(join(dataDir, 'services.json'), 'utf8').catch(() => '{}')) as { services?: unknown[] }).services?.length === 1);
    await first.stop();
    const second = await run();
    const again = (second.lines.find((l) => l.ready !== undefined)?.ready?.http) as string;
    try {
      const services = await (await fetch(`http://${again}/v1/agent/services`)).json() as Record<string, { Service: string; Port: number }>;
      expect(services['api-1']).toMatchObject({ Service: 'api', Port: 9000 });
      const checks = await (await fetch(`http://${again}/v1/agent/checks`)).json() as Record<string, { Name: string }>;
      expect(Object.values(checks).map((c) => c.Name)).toContain('api alive');
    } finally {
      await second.stop();
    }
  }, 40_000);
});
