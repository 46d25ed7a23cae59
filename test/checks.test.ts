/**
 * Checks travel with their instance (src/runtime/services.ts): names, types, statuses, outputs
 * and notes reach every member; output alone changing is held back (Consul's
 * check_update_interval) while status changes go at once; maintenance, node checks and outputs
 * too large for the record. Members on 127.0.0.1; every wait is bounded.
 */
import { createServer, type Server } from 'node:http';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { Grapevine } from '../src/index.js';
import { until } from './until.js';

let a: Grapevine;
let b: Grapevine;
let server: Server;
let url = '';

describe('checks that travel', () => {
  beforeAll(async () => {
    server = createServer((req, res) => {
      if (req.url === '/moved') {
        res.writeHead(302, { Location: '/health' });
        res.end();
        return;
      }
      res.end(req.url === '/big' ? 'x'.repeat(5_000) : 'fine');
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    url = `http://127.0.0.1:${(server.address() as { port: number }).port}`;
    a = await Grapevine.start({ name: 'a', bind: '127.0.0.1:0', profile: 'local' });
    b = await Grapevine.start({ name: 'b', bind: '127.0.0.1:0', profile: 'local', seeds: [a.address] });
    await until(() => a.members().length === 2 && b.members().length === 2);
  }, 20_000);

  afterAll(async () => {
    await Promise.all([a?.close(), b?.close()]);
    server?.close();
  });

  test('name, type, status, output and notes reach another member; a note alone changing is held back, a status change is not', async () => {
    const h = await a.register({ name: 'notes', port: 1, check: { ttlMs: 60_000, name: 'heartbeat', notes: 'beats every second' } });
    h.pass('one');
    await until(() => b.lookup('notes')[0]?.health === 'passing');
    expect(b.lookup('notes')[0]?.checks).toEqual([{ id: 'service:notes', name: 'heartbeat', type: 'ttl', status: 'passing', output: 'one', notes: 'beats every second', intervalMs: 0, timeoutMs: 0 }]);
    // The same status with a new note: the owner knows it at once, the others within five minutes.
    h.pass('two');
    expect(a.check('service:notes')?.output).toBe('two');
    await new Promise((r) => setTimeout(r, 1_500));
    expect(b.lookup('notes')[0]?.checks[0]?.output).toBe('one');
    h.warn('three');
    await until(() => b.lookup('notes')[0]?.checks[0]?.output === 'three');
    expect(b.lookup('notes')[0]?.health).toBe('warning');
    await h.deregister();
  });

  test('an HTTP check\'s output is Consul\'s; an added check and maintenance count against the instance everywhere', async () => {
    await a.register({ name: 'web', id: 'web-1', port: 2, check: { http: `${url}/health`, intervalMs: 1_000, name: 'web up' } });
    await until(() => b.lookup('web')[0]?.checks[0]?.output === `HTTP GET ${url}/health: 200 OK Output: fine`);
    const disk = await a.addCheck({ serviceId: 'web-1', id: 'web-1-disk', name: 'disk', status: 'passing' });
    await until(() => b.lookup('web')[0]?.checks.length === 2);
    disk.fail('disk full');
    await until(() => b.lookup('web')[0]?.health === 'critical');
    expect(b.lookup('web')[0]?.checks[1]).toMatchObject({ id: 'web-1-disk', type: '', status: 'critical', output: 'disk full' });
    expect(a.removeCheck('web-1-disk')).toBe(true);
    await until(() => b.lookup('web')[0]?.health === 'passing');

    a.maintenance('deploying', 'web-1');
    await until(() => b.pick('web') === undefined);
    expect(b.lookup('web')[0]?.checks.map((c) => [c.id, c.status, c.notes])).toContainEqual(['_service_maintenance:web-1', 'critical', 'deploying']);
    a.maintenance(false, 'web-1');
    await until(() => b.pick('web') !== undefined);

    // The member's own checks count against every instance of it.
    a.maintenance('');
    await until(() => b.lookup('web')[0]?.health === 'critical');
    expect(b.catalog.nodeChecks('a')).toEqual([expect.objectContaining({ id: '_node_maintenance', notes: expect.stringContaining('no reason was provided') })]);
    a.maintenance(false);
    await until(() => b.lookup('web')[0]?.health === 'passing');
    expect(() => a.maintenance('x', 'nope')).toThrowError(expect.objectContaining({ option: 'serviceId' }));
    await a.deregister('web-1');
  });

  test('redirects are followed as far as the check allows (Consul: 10 unless DisableRedirects)', async () => {
    const follows = await a.register({ name: 'moved', id: 'moved-1', port: 4, check: { http: `${url}/moved`, redirects: 10 } });
    const stays = await a.register({ name: 'moved', id: 'moved-2', port: 5, check: { http: `${url}/moved` } });
    expect([follows.health, stays.health]).toEqual(['passing', 'critical']);
    expect(a.check('service:moved-1')?.output).toBe(`HTTP GET ${url}/moved: 200 OK Output: fine`);
    expect(a.check('service:moved-2')?.output).toMatch(/: 302 Found Output: $/);
    await Promise.all([follows.deregister(), stays.deregister()]);
  });

  test('outputs that would make the record too large travel cut, and the instance is still spread', async () => {
    const checks = Array.from({ length: 16 }, (_, n) => ({ id: `big-${n}`, http: `${url}/big`, intervalMs: 60_000 }));
    await a.register({ name: 'big', port: 3, checks });
    await until(() => b.lookup('big')[0]?.checks.length === 16 && b.lookup('big')[0]?.health === 'passing');
    const outputs = (b.lookup('big')[0]?.checks ?? []).map((c) => Buffer.byteLength(c.output));
    expect(Math.max(...outputs)).toBeLessThanOrEqual(256);
    expect(Math.min(...outputs)).toBeGreaterThan(200);
    // The owner still answers its own checks in full (4 KiB, Consul's default).
    expect(Buffer.byteLength(a.check('big-0')?.output ?? '')).toBe(4_096);
    await a.deregister('big');
  });
});
