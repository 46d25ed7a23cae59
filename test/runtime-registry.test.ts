/**
 * The registry through the public API: three members in this process on 127.0.0.1, the
 * `local` profile. Waits are bounded; nothing asserts on speed.
 */
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { Grapevine, type LogFields, type ServiceChange, WaitTimeoutError } from '../src/index.js';
import { until } from './until.js';

let a: Grapevine;
let b: Grapevine;
let c: Grapevine;


describe('registry over the runtime', () => {
  beforeAll(async () => {
    a = await Grapevine.start({ name: 'a', bind: '127.0.0.1:0', profile: 'local', meta: { zone: 'z1' } });
    b = await Grapevine.start({ name: 'b', bind: '127.0.0.1:0', profile: 'local', seeds: [a.address] });
    c = await Grapevine.start({ name: 'c', bind: '127.0.0.1:0', profile: 'local', seeds: [a.address] });
    await until(() => [a, b, c].every((g) => g.members().filter((m) => m.state === 'alive').length === 3));
  }, 30_000);

  afterAll(async () => {
    await Promise.all([a, b, c].map((g) => g?.close()));
  });

  test('node metadata is part of the record', async () => {
    expect(b.member('a')?.meta).toEqual({ zone: 'z1' });
    a.setMeta({ zone: 'z2' });
    await until(() => c.member('a')?.meta.zone === 'z2');
  });

  test('register with a TTL check: waitFor, watch, pick, deregister', async () => {
    const changes: ServiceChange[] = [];
    const ac = new AbortController();
    const watching = (async () => {
      for await (const change of c.watch('api', { signal: ac.signal })) changes.push(change);
    })();
    const handle = await a.register({ name: 'api', port: 9000, tags: ['v1'], check: { ttlMs: 5_000 } });
    expect(handle.health).toBe('critical');
    await expect(b.waitFor('api', { timeoutMs: 300 })).rejects.toBeInstanceOf(WaitTimeoutError);
    const waiting = b.waitFor('api', { timeoutMs: 10_000, tags: ['v1'] });
    // Let c see the critical version first, so its watch has each step to report (updates may coalesce otherwise).
    await until(() => c.lookup('api').length === 1);
    handle.pass();
    const instance = await waiting;
    expect(instance).toMatchObject({ node: 'a', port: 9000, address: '127.0.0.1', health: 'passing' });
    expect(b.pick('api')?.node).toBe('a');
    // And the passing version before the removal: c hears from a on its own schedule, not b's.
    await until(() => c.lookup('api')[0]?.health === 'passing');
    expect(await handle.deregister()).toBe(true);
    await until(() => c.lookup('api').length === 0);
    ac.abort();
    await watching;
    expect(changes.map((ch) => `${ch.type}:${ch.instance.health}`)).toEqual(['added:critical', 'updated:passing', 'removed:passing']);
  });

  test('a record far larger than a packet reaches every member (pulled over TCP)', async () => {
    for (let i = 0; i < 40; i++) {
      await b.register({ name: 'shard', id: `shard-${i}`, port: 10_000 + i, meta: { blob: String(i).repeat(1_000).slice(0, 1_000) } });
    }
    await until(() => a.lookup('shard').length === 40 && c.lookup('shard').length === 40);
    // Far beyond the 512 bytes gossip carries: each of the others can only have pulled it (from b or from each other).
    const size = 40 * 1_000;
    expect(a.stats().core.bytesIn).toBeGreaterThan(size);
    expect(c.stats().core.bytesIn).toBeGreaterThan(size);
    expect(c.lookup('shard').find((i) => i.id === 'shard-7')?.meta.blob).toBe('7'.repeat(1_000));
  });

  test('closing ends watches and rejects pending waitFor calls', async () => {
    const d = await Grapevine.start({ name: 'd', bind: '127.0.0.1:0', profile: 'local', seeds: [a.address] });
    const seen: string[] = [];
    const watching = (async () => {
      for await (const change of d.watch('nothing-here')) seen.push(change.type);
      return 'ended';
    })();
    const waiting = d.waitFor('nothing-here');
    await d.close();
    expect(await watching).toBe('ended');
    await expect(waiting).rejects.toMatchObject({ code: 'grapevine.invalid-state' });
    expect(seen).toEqual([]);
  });

  test('bad and oversized registrations are typed errors and change nothing', async () => {
    await expect(a.register({ name: '', port: 1 })).rejects.toMatchObject({ code: 'grapevine.invalid-option', option: 'service.name' });
    await expect(a.register({ name: 'x', port: 1, check: { http: 'nope' } })).rejects.toMatchObject({ option: 'check.http' });
    const huge = Object.fromEntries(Array.from({ length: 64 }, (_, i) => [`k${i}`, 'v'.repeat(1_000)]));
    const many = Array.from({ length: 3 }, (_, i) => a.register({ name: 'huge', id: `h${i}`, port: 1, meta: huge }));
    await expect(Promise.all(many)).rejects.toMatchObject({ code: 'grapevine.oversized' });
    expect(a.lookup('huge').length).toBeLessThan(3);
  });

  test('every public method names a bad argument in a typed error', async () => {
    const invalid = (option: string) => expect.objectContaining({ code: 'grapevine.invalid-option', option });
    expect(() => a.lookup(undefined as unknown as string)).toThrowError(invalid('service'));
    expect(() => a.lookup('web', { tags: 'v2' as unknown as string[] })).toThrowError(invalid('tags'));
    expect(() => a.pick('web', { strategy: 'fastest' as 'random' })).toThrowError(invalid('strategy'));
    expect(() => a.watch(42 as unknown as string)).toThrowError(invalid('service'));
    expect(() => a.waitFor('web', { timeoutMs: -1 })).toThrowError(invalid('timeoutMs'));
    expect(() => a.waitFor('web', { timeoutMs: '200' as unknown as number })).toThrowError(invalid('timeoutMs'));
    expect(() => a.member(7 as unknown as string)).toThrowError(invalid('name'));
    await expect(a.register({ name: 'x', port: 1, tags: 'v2' as unknown as string[] })).rejects.toMatchObject(invalid('service.tags'));
    await expect(a.register({ name: 'x', port: 1, meta: { big: 'v'.repeat(200_000) } })).rejects.toMatchObject({ code: 'grapevine.oversized', size: 200_000, limit: 1_024 });
    await expect(a.register({ name: 'x', port: 1, check: { tcp: '127.0.0.1:1', intervalMs: 5 } })).rejects.toMatchObject(invalid('check.intervalMs'));
    await expect(Grapevine.start({ bind: '127.0.0.1:0', signal: 'x' as unknown as AbortSignal })).rejects.toMatchObject(invalid('signal'));
    await expect(Grapevine.start({ bind: '127.0.0.1:0', logger: { info: () => undefined } as never })).rejects.toMatchObject(invalid('logger'));
    expect(a.lookup('x')).toEqual([]);
  });

  test('instances carry hostPort and url(), IPv6 bracketed', async () => {
    await a.register({ name: 'v6', id: 'v6-1', address: '::1', port: 8443 });
    await a.register({ name: 'v6', id: 'v4-1', address: '127.0.0.1', port: 8080 });
    const [v4, v6] = [...a.lookup('v6')].sort((x, y) => x.id.localeCompare(y.id));
    expect(v6?.hostPort).toBe('[::1]:8443');
    expect(v6?.url('https', '/health')).toBe('https://[::1]:8443/health');
    expect(v4?.url()).toBe('http://127.0.0.1:8080');
    expect(v4?.url('http', 'x')).toBe('http://127.0.0.1:8080/x');
    expect(() => v4?.url('no scheme')).toThrowError(expect.objectContaining({ option: 'scheme' }));
    expect(JSON.parse(JSON.stringify(v6))).toMatchObject({ hostPort: '[::1]:8443', address: '::1' });
    await until(() => c.lookup('v6').length === 2);
    expect(c.lookup('v6').map((i) => i.hostPort).sort()).toEqual(['127.0.0.1:8080', '[::1]:8443']);
  });

  test('a logger hears joins and leaves; after leave or close a member lists itself left or dead', async () => {
    const lines: { level: string; message: string; fields?: LogFields }[] = [];
    const at = (level: string) => (message: string, fields?: LogFields): void => void lines.push({ level, message, ...(fields !== undefined ? { fields } : {}) });
    const logger = { debug: at('debug'), info: at('info'), warn: at('warn'), error: at('error') };
    const e = await Grapevine.start({ name: 'e', bind: '127.0.0.1:0', profile: 'local', seeds: [a.address], logger });
    const f = await Grapevine.start({ name: 'f', bind: '127.0.0.1:0', profile: 'local', seeds: [a.address] });
    await until(() => lines.some((l) => l.message === 'member f joined at ' + f.address));
    await f.leave();
    await until(() => lines.some((l) => l.level === 'info' && l.message === 'member f left'));
    expect(f.member('f')?.state).toBe('left');
    expect(lines[0]).toMatchObject({ level: 'info', fields: { name: 'e', encrypted: false } });
    expect(lines.find((l) => l.message.startsWith('member e joined:'))?.level).toBe('info');
    // Members learned while joining go to debug, not one info line each.
    expect(lines.filter((l) => l.level === 'info' && / joined at /.test(l.message)).map((l) => l.message)).toEqual([`member f joined at ${f.address}`]);
    await e.close();
    expect(e.member('e')?.state).toBe('dead');
    expect(lines.at(-1)).toMatchObject({ level: 'info', message: 'member e closed' });
  });
});
