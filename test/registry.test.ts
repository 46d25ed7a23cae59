/**
 * The registry: record codec, the local index (lookup, pick, watch), the owner's writes, and
 * records spreading through simulated clusters. Property tests print their seed on failure;
 * rerun with it to replay.
 */
import { test as propTest } from '@fast-check/vitest';
import fc from 'fast-check';
import { describe, expect, test } from 'vitest';
import { Membership } from '../src/core/membership.js';
import type { MemberInfo } from '../src/core/members.js';
import { seededRng } from '../src/core/rng.js';
import { Catalog } from '../src/registry/catalog.js';
import { decodeRecord, encodeRecord, type ServiceRecord } from '../src/registry/record.js';
import { hostOf } from '../src/core/address.js';
import { Registry, type ServiceChange } from '../src/registry/registry.js';
import { watchService, WatchOverflowError } from '../src/registry/watch.js';
import { simulate } from '../sim/index.js';
import { InvariantChecker } from '../sim/invariants.js';

function service(id: string, name: string, extra: Partial<ServiceRecord> = {}): ServiceRecord {
  return { id, name, address: '', port: 80, tags: [], meta: {}, weight: 1, health: 'passing', checks: [], taggedAddresses: {}, warningWeight: 1, ...extra };
}

function member(name: string, services: ServiceRecord[], state: MemberInfo['state'] = 'alive', addr = `10.0.0.${name.length}:7946`): MemberInfo {
  return { name, addr, record: encodeRecord({ meta: { zone: 'a' }, services }), version: 1, incarnation: 0, state, stateChangeMs: 0 };
}

describe('record codec', () => {
  test('round trip, and hostile records are refused with a reason', () => {
    const record = { meta: { zone: 'a' }, services: [service('b1', 'billing', { tags: ['v2'], meta: { k: 'v' }, health: 'warning' })], checks: [], keys: [] };
    expect(decodeRecord(encodeRecord(record))).toEqual(record);
    expect(decodeRecord(new Uint8Array(0))).toEqual({ meta: {}, services: [], checks: [], keys: [] });
    expect(decodeRecord(encodeRecord({ ...record, keys: ['not hex'] }))).toBe('record: bad key fingerprints');
    expect(decodeRecord(Uint8Array.from([0x81, 0xa1, 0x61, 0x01]))).toMatch(/unsupported-type/); // a map
    expect(decodeRecord(Uint8Array.from([0x93, 0x01, 0x90]))).toMatch(/truncated/);
    const twice = encodeRecord({ meta: {}, services: [service('x', 'a'), service('x', 'b')] });
    expect(decodeRecord(twice)).toMatch(/duplicate service id/);
    const proto = decodeRecord(encodeRecord({ meta: JSON.parse('{"__proto__":"x"}') as Record<string, string>, services: [] }));
    expect(typeof proto === 'object' && Object.keys(proto.meta)).toEqual(['__proto__']);
  });

  propTest.prop([fc.uint8Array({ maxLength: 200 })])('arbitrary bytes never throw', (bytes) => {
    const r = decodeRecord(bytes);
    expect(typeof r === 'string' || Array.isArray(r.services)).toBe(true);
  });
});

describe('registry index', () => {
  test('lookup filters by tags, meta and health; instances default to the node address', () => {
    const r = new Registry({ rng: seededRng(1) });
    r.applyMember(member('a', [service('b1', 'billing', { tags: ['v1'] }), service('w', 'web')]));
    r.applyMember(member('bb', [service('b2', 'billing', { tags: ['v2', 'eu'], meta: { tier: 'gold' } }), service('b3', 'billing', { health: 'critical', address: '192.168.1.9' })]));
    expect(r.lookup('billing').map((i) => i.id).sort()).toEqual(['b1', 'b2', 'b3']);
    expect(r.lookup('billing', { tags: ['v2'] }).map((i) => i.id)).toEqual(['b2']);
    expect(r.lookup('billing', { meta: { tier: 'gold' } }).map((i) => i.id)).toEqual(['b2']);
    expect(r.lookup('billing', { healthy: true }).map((i) => i.id).sort()).toEqual(['b1', 'b2']);
    expect(r.lookup('billing').find((i) => i.id === 'b1')?.address).toBe('10.0.0.1');
    expect(r.lookup('billing').find((i) => i.id === 'b3')?.address).toBe('192.168.1.9');
    expect(r.lookup('nothing')).toEqual([]);
    expect(r.services().sort()).toEqual(['billing', 'web']);
    expect(r.nodeMeta('a')).toEqual({ zone: 'a' });
    // Same data, same array: no rebuild per call.
    expect(r.lookup('billing')).toBe(r.lookup('billing'));
  });

  test('dead and left members vanish; suspect ones stay, marked (or go, if configured)', () => {
    for (const includeSuspect of [true, false]) {
      const r = new Registry({ rng: seededRng(1), includeSuspect });
      r.applyMember(member('a', [service('b1', 'billing')]));
      r.applyMember(member('c', [service('b2', 'billing')]));
      r.applyMember(member('a', [service('b1', 'billing')], 'suspect'));
      expect(r.lookup('billing').map((i) => `${i.id}:${i.suspect}`).sort()).toEqual(includeSuspect ? ['b1:true', 'b2:false'] : ['b2:false']);
      r.applyMember(member('a', [service('b1', 'billing')], 'dead'));
      r.applyMember(member('c', [service('b2', 'billing')], 'left'));
      expect(r.lookup('billing')).toEqual([]);
      expect(r.size).toBe(0);
    }
  });

  test('changes are reported per instance; unchanged instances keep their identity', () => {
    const r = new Registry({ rng: seededRng(1) });
    const changes: string[] = [];
    r.onChange((c) => changes.push(`${c.type}:${c.instance.id}`));
    r.applyMember(member('a', [service('x', 's'), service('y', 's')]));
    const y = r.lookup('s').find((i) => i.id === 'y');
    r.applyMember({ ...member('a', [service('x', 's', { port: 81 }), service('y', 's')]), version: 2 });
    expect(r.lookup('s').find((i) => i.id === 'y')).toBe(y);
    r.applyMember({ ...member('a', [service('y', 's')]), version: 3 });
    expect(changes).toEqual(['added:x', 'added:y', 'updated:x', 'removed:x']);
  });

  test('a malformed record from a peer is counted and the previous one kept', () => {
    const r = new Registry({ rng: seededRng(1) });
    r.applyMember(member('a', [service('x', 's')]));
    r.applyMember({ ...member('a', []), record: Uint8Array.from([0xc1]) });
    expect(r.badRecords).toBe(1);
    expect(r.lookup('s').map((i) => i.id)).toEqual(['x']);
  });

  test('pick: round-robin cycles, random and weighted follow the rng, unhealthy are skipped', () => {
    const r = new Registry({ rng: seededRng(7) });
    r.applyMember(member('a', [service('1', 's', { weight: 1 }), service('2', 's', { weight: 3 }), service('3', 's', { health: 'critical' })]));
    const rr = Array.from({ length: 4 }, () => r.pick('s')?.id);
    expect(new Set(rr)).toEqual(new Set(['1', '2']));
    expect(rr[0]).not.toBe(rr[1]);
    const counts: Record<string, number> = {};
    for (let i = 0; i < 4_000; i++) {
      const id = r.pick('s', { strategy: 'weighted' })?.id as string;
      counts[id] = (counts[id] ?? 0) + 1;
    }
    expect(counts['3']).toBeUndefined();
    expect((counts['2'] as number) / (counts['1'] as number)).toBeGreaterThan(2.5);
    expect((counts['2'] as number) / (counts['1'] as number)).toBeLessThan(3.5);
    expect(r.pick('s', { strategy: 'random', healthy: false })).toBeDefined();
    expect(r.pick('none')).toBeUndefined();
  });

  test('pick avoids a suspect member\'s instances while others exist, and uses them when nothing else is left', () => {
    const r = new Registry({ rng: seededRng(3) });
    r.applyMember(member('a', [service('1', 's')]));
    r.applyMember(member('bb', [service('2', 's')], 'suspect'));
    expect(new Set(Array.from({ length: 10 }, () => r.pick('s')?.id))).toEqual(new Set(['1']));
    expect(r.lookup('s').length).toBe(2);
    r.applyMember(member('a', [service('1', 's')], 'dead'));
    expect(r.pick('s')?.id).toBe('2');
    r.applyMember(member('bb', [service('2', 's')]));
    expect(r.pick('s')?.suspect).toBe(false);
  });

  test('hostOf handles IPv4, bracketed IPv6 and bare names', () => {
    expect(hostOf('10.1.2.3:7946')).toBe('10.1.2.3');
    expect(hostOf('[::1]:7946')).toBe('::1');
    expect(hostOf('n3')).toBe('n3');
  });
});

describe('watch', () => {
  test('yields current instances, then changes, and ends on abort', async () => {
    const r = new Registry({ rng: seededRng(1) });
    r.applyMember(member('a', [service('x', 's')]));
    const ac = new AbortController();
    const seen: string[] = [];
    const done = (async () => {
      for await (const c of watchService(r, 's', { signal: ac.signal })) seen.push(`${c.type}:${c.instance.id}`);
    })();
    r.applyMember({ ...member('a', [service('x', 's'), service('y', 's'), service('z', 'other')]), version: 2 });
    await new Promise((resolve) => setImmediate(resolve));
    ac.abort();
    await done;
    expect(seen).toEqual(['added:x', 'added:y']);
  });

  test('a watcher that falls too far behind fails with WatchOverflowError', async () => {
    const r = new Registry({ rng: seededRng(1) });
    const it = watchService(r, 's', { bufferMax: 3 });
    for (let v = 1; v <= 5; v++) r.applyMember({ ...member('a', [service(`i${v}`, 's')]), version: v });
    const got: ServiceChange[] = [];
    await expect((async () => {
      for await (const c of it) got.push(c);
    })()).rejects.toBeInstanceOf(WatchOverflowError);
    expect(got.length).toBe(3);
  });
});

describe('the Catalog', () => {
  test('owner writes: register, update by id, deregister; oversized is a typed error that changes nothing', () => {
    const core = new Membership({ name: 'me', addr: '10.9.9.9:7946', rng: seededRng(1), nowMs: 0, config: { recordBytesMax: 2_000 } });
    const r = new Catalog(core, { rng: seededRng(1) });
    const id = r.register(0, { name: 'api', port: 8080, tags: ['v1'] });
    expect(id).toBe('api');
    expect(r.register(0, { name: 'api', port: 8081 })).toBe('api-8081');
    expect(r.lookup('api').map((i) => `${i.address}:${i.port}`).sort()).toEqual(['10.9.9.9:8080', '10.9.9.9:8081']);
    expect(r.lookup('api').every((i) => i.source === 'gossip')).toBe(true);
    r.register(0, { id: 'api', name: 'api', port: 8080, tags: ['v2'] });
    expect(r.lookup('api', { tags: ['v2'] }).length).toBe(1);
    const version = core.member('me')?.version;
    expect(() => r.register(0, { name: 'big', port: 1, meta: { blob: 'x'.repeat(1_000), more: 'y'.repeat(1_000) } }))
      .toThrowError(expect.objectContaining({ code: 'grapevine.oversized' }));
    expect(core.member('me')?.version).toBe(version);
    expect(r.lookup('big')).toEqual([]);
    expect(() => r.register(0, { name: '', port: 1 })).toThrowError(expect.objectContaining({ option: 'service.name' }));
    expect(() => r.register(0, { name: 'x', port: 70_000 })).toThrowError(expect.objectContaining({ option: 'service.port' }));
    expect(r.deregister(0, 'api')).toBe(true);
    expect(r.deregister(0, 'api')).toBe(false);
    expect(r.lookup('api').map((i) => i.id)).toEqual(['api-8081']);
    r.setNodeMeta(0, { zone: 'z' });
    expect(r.toMember(core.self()).meta).toEqual({ zone: 'z' });
  });

  test('change indexes: the catalog\'s grows by one per change; a service\'s grows whenever it changes, also when it empties', () => {
    const core = new Membership({ name: 'me', addr: '10.9.9.9:7946', rng: seededRng(1), nowMs: 0 });
    const c = new Catalog(core, { rng: seededRng(1) });
    const seen: number[] = [];
    c.onChange((change) => seen.push(change.index));
    expect([c.index, c.serviceIndex('a'), c.serviceIndex('b')]).toEqual([0, 0, 0]);
    c.register(0, { name: 'a', port: 1 });
    c.register(0, { name: 'b', port: 2 });
    expect([c.index, c.serviceIndex('a'), c.serviceIndex('b')]).toEqual([2, 1, 2]);
    c.setHealth(0, 'a', 'critical');
    expect([c.index, c.serviceIndex('a'), c.serviceIndex('b')]).toEqual([3, 3, 2]);
    c.deregister(0, 'a');
    const emptied = c.serviceIndex('a');
    expect(emptied).toBeGreaterThan(3);
    expect(c.serviceIndex('b')).toBe(2);
    c.register(0, { name: 'a', port: 1 });
    expect(c.serviceIndex('a')).toBeGreaterThan(emptied);
    expect(seen).toEqual([1, 2, 3, 4, 5]);
  });
});

describe('records in a simulated cluster', () => {
  test('registrations reach every node; a crashed owner\'s instances leave every lookup (seed 50)', () => {
    const c = simulate({ nodes: 30, seed: 50 });
    c.runFor(5_000);
    c.register('n7', { name: 'billing', port: 8080, tags: ['v2'] });
    c.register('n9', { name: 'billing', port: 8080 });
    expect(c.runUntilTrue(() => c.liveNodes().every((n) => c.view(n.name).lookup('billing').length === 2), 3_000)).toBe(true);
    expect(c.view('n20').lookup('billing', { tags: ['v2'] }).map((i) => i.node)).toEqual(['n7']);
    c.setHealth('n9', 'billing', 'critical');
    expect(c.runUntilTrue(() => c.liveNodes().every((n) => c.view(n.name).lookup('billing', { healthy: true }).length === 1), 3_000)).toBe(true);
    c.crash('n7');
    expect(c.runUntilTrue(() => c.liveNodes().every((n) => c.view(n.name).lookup('billing').every((i) => i.node !== 'n7')), 40_000)).toBe(true);
    expect(c.view('n1').pick('billing')).toBeUndefined(); // n9's is critical, n7's is gone
    expect(c.view('n1').pick('billing', { healthy: false })?.node).toBe('n9');
  });

  test.each([51, 52, 53])('a burst of large record writes reaches every node at once, not at the next push-pull (seed %i)', (seed) => {
    // Writes a few ms apart: each version's pull is still in flight when the next is announced.
    const c = simulate({ nodes: 6, seed, config: { recordInlineBytesMax: 100 } });
    c.runFor(3_000);
    for (let n = 0; n < 16; n++) {
      c.register('n0', { name: 'burst', id: `b${n}`, port: n + 1, meta: { pad: 'x'.repeat(300) } });
      c.runFor(1 + (n % 3));
    }
    const started = c.nowMs;
    const converged = c.runUntilTrue(() => c.liveNodes().every((m) => c.view(m.name).lookup('burst').length === 16), 5_000);
    expect(converged, `seed ${seed}: ${c.liveNodes().map((m) => c.view(m.name).lookup('burst').length).join(',')} after ${c.nowMs - started} ms`).toBe(true);
  });

  const op = fc.oneof(
    fc.record({ kind: fc.constant('register' as const), id: fc.constantFrom('a', 'b', 'c'), port: fc.integer({ min: 1, max: 9 }), big: fc.boolean() }),
    fc.record({ kind: fc.constant('deregister' as const), id: fc.constantFrom('a', 'b', 'c') }),
    fc.record({ kind: fc.constant('health' as const), id: fc.constantFrom('a', 'b', 'c'), health: fc.constantFrom('passing' as const, 'critical' as const) }),
  );

  propTest.prop([
    fc.integer({ min: 0, max: 0xffff_ffff }),
    fc.array(fc.tuple(fc.integer({ min: 0, max: 3_000 }), op), { minLength: 1, maxLength: 12 }),
    fc.double({ min: 0, max: 0.2, noNaN: true }),
    fc.boolean(),
  ], { numRuns: 25 })('any writes under loss and a healed partition converge every node to the owner\'s latest record', (seed, ops, loss, cut) => {
    // Small inline limit: records with a 'big' entry travel by digest and pull.
    const c = simulate({ nodes: 6, seed, network: { lossRate: loss }, config: { recordInlineBytesMax: 100 } });
    c.runFor(3_000);
    // Stale versions never overwrite newer ones: at every observer a member's (incarnation, version) only grows.
    const invariants = new InvariantChecker(c);
    const heal = cut ? c.partition(['n0', 'n1', 'n2'], ['n3', 'n4', 'n5']) : () => undefined;
    for (const [delay, o] of ops) {
      c.runFor(delay);
      if (o.kind === 'register') c.register('n0', { id: o.id, name: 'svc', port: o.port, meta: o.big ? { pad: 'x'.repeat(300) } : {} });
      else if (o.kind === 'deregister') c.deregister('n0', o.id);
      else c.setHealth('n0', o.id, o.health);
    }
    c.runFor(2_000);
    // Versions only grow at every observer while writes and faults go on (checked below after healing too).
    heal();
    c.network.setLossRate(0);
    const want = JSON.stringify(c.view('n0').lookup('svc').map((i) => [i.id, i.port, i.health]).sort());
    const version = c.view('n0').member('n0')?.version;
    const same = (): boolean => c.liveNodes().every((n) => c.view(n.name).member('n0')?.version === version
      && JSON.stringify(c.view(n.name).lookup('svc').map((i) => [i.id, i.port, i.health]).sort()) === want);
    expect(c.runUntilTrue(same, 120_000), `seed ${seed}`).toBe(true);
    invariants.check();
    expect(invariants.ok, invariants.report(`seed ${seed}, ops ${JSON.stringify(ops)}, loss ${loss}, cut ${cut}`)).toBe(true);
  });
});

describe('printable service names', () => {
  test('a service name or id with control characters is a typed error naming the field', () => {
    const core = new Membership({ name: 'me', addr: '10.9.9.9:7946', rng: seededRng(1), nowMs: 0 });
    const c = new Catalog(core, { rng: seededRng(1) });
    expect(() => c.register(0, { name: 'api\u0000', port: 1 })).toThrowError(expect.objectContaining({ option: 'service.name' }));
    expect(() => c.register(0, { name: 'api', id: 'x\uFFFD', port: 1 })).toThrowError(expect.objectContaining({ option: 'service.id' }));
    expect(() => new Membership({ name: 'me\u202E', addr: 'a:1', rng: seededRng(1), nowMs: 0 })).toThrowError(expect.objectContaining({ option: 'name' }));
    expect(c.register(0, { name: 'café', port: 1 })).toBe('café');
  });
});
