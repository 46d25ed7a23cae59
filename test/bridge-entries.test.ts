/**
 * What bridges write and read, without a store: entry shapes, paths, the registry's pools and
 * imported instances, and the `bridges` option's validation.
 */
import { fc, test as prop } from '@fast-check/vitest';
import { describe, expect, test } from 'vitest';
import { curatorEntry, exportedEntry, instancePath, parseEntry } from '../src/bridge/index.js';
import { encodeRecord, Grapevine, type ImportedInstance, type Instance, seededRng } from '../src/index.js';
import { Registry } from '../src/registry/registry.js';

const ETCD = { store: 'etcd' as const, key: 'services/x' };

function only(parsed: ReturnType<typeof parseEntry>): ImportedInstance {
  if (parsed.kind !== 'instance') throw new Error(`expected an instance, got ${JSON.stringify(parsed)}`);
  return parsed.instance;
}

describe('entries read from a store', () => {
  test('a bare host:port at <service> or <service>/<id>; the node names where it came from', () => {
    expect(only(parseEntry('service-a', '127.0.0.1:8080', { store: 'etcd', key: 'services/service-a' }, 'default'))).toEqual({
      id: 'service-a', service: 'service-a', node: 'etcd:services/service-a', address: '127.0.0.1', port: 8080, tags: [], meta: {}, weight: 1, health: 'passing', pool: '',
    });
    expect(only(parseEntry('db/primary', '[::1]:5432\n', ETCD, 'default'))).toMatchObject({ id: 'primary', service: 'db', address: '::1', port: 5432 });
    expect(only(parseEntry('db/r%2F1', 'db.internal:5432', ETCD, 'default'))).toMatchObject({ id: 'r/1', address: 'db.internal' });
  });

  test('Curator JSON: its id and address; disabled instances are critical', () => {
    const curator = { name: 'billing', id: 'u-1', address: '10.0.0.9', port: 7000, sslPort: null, payload: 'x', registrationTimeUTC: 1, serviceType: 'DYNAMIC', enabled: false };
    expect(only(parseEntry('billing/u-1', JSON.stringify(curator), { store: 'zookeeper', key: '/services/billing/u-1' }, 'default'))).toMatchObject({
      id: 'u-1', service: 'billing', node: 'zookeeper:/services/billing/u-1', address: '10.0.0.9', port: 7000, health: 'critical', pool: '',
    });
    expect(only(parseEntry('tls/1', JSON.stringify({ ...curator, port: null, sslPort: 8443, enabled: true }), ETCD, 'p'))).toMatchObject({ port: 8443, health: 'passing' });
  });

  test('what one pool exports, another reads back whole (our JSON and Curator JSON); its own pool skips it', () => {
    const registry = new Registry({ rng: seededRng(1), pool: 'eu' });
    registry.applyMember({ name: 'n1', addr: '10.0.0.1:7946', state: 'alive', incarnation: 1, record: encodeOne() } as never);
    const mine = registry.lookup('web')[0] as Instance;
    const entry = exportedEntry(mine, 'eu');
    expect(instancePath(mine, 'eu')).toBe('web/w%401@n1@eu');
    for (const text of [JSON.stringify(entry), JSON.stringify(curatorEntry(entry, 5))]) {
      expect(only(parseEntry(instancePath(mine, 'eu'), text, ETCD, 'us'))).toEqual({
        id: 'w@1', service: 'web', node: 'n1', address: '10.0.0.1', port: 80, tags: ['a'], meta: { k: 'v' }, weight: 2, health: 'warning', pool: 'eu',
      });
      expect(parseEntry(instancePath(mine, 'eu'), text, ETCD, 'eu')).toEqual({ kind: 'skip' });
    }
  });

  test('skipped: names starting with "_", deeper paths, empty values; bad: oversized, malformed, out of limits', () => {
    for (const path of ['_members/default/a', '_x', 'a/b/c', '/a', 'a/']) expect(parseEntry(path, '1.2.3.4:5', ETCD, 'd').kind).toBe('skip');
    expect(parseEntry('a', '', ETCD, 'd').kind).toBe('skip');
    expect(parseEntry('a', 'x'.repeat(70_000), ETCD, 'd')).toMatchObject({ kind: 'bad', why: expect.stringContaining('bytes') });
    for (const bad of ['nonsense', '1.2.3.4', '1.2.3.4:0', '{', '[1]', '{"address":"1.2.3.4"}', JSON.stringify({ address: 'h', port: 1, tags: Array(100).fill('t') })]) {
      expect(parseEntry('a/1', bad, ETCD, 'd').kind, bad).toBe('bad');
    }
  });

  prop.prop([fc.oneof(fc.string(), fc.json(), fc.uint8Array({ maxLength: 300 }))], { numRuns: 500 })('no input throws', (value) => {
    expect(['instance', 'skip', 'bad']).toContain(parseEntry('svc/id', value, ETCD, 'default').kind);
  });
});

describe('pools and imported instances in the registry', () => {
  test('lookup filters by pool; pick prefers its own pool, then any; removal by key', () => {
    const r = new Registry({ rng: seededRng(2), pool: 'eu' });
    const imported = (id: string, pool: string) => ({ id, service: 'api', node: `${pool}-node`, address: '10.0.0.2', port: 1, tags: [], meta: {}, weight: 1, health: 'passing' as const, pool });
    r.setImported('etcd x\u0000api/1', imported('1', 'us'), 'etcd');
    expect(r.pick('api')?.pool).toBe('us');
    r.applyMember({ name: 'n1', addr: '10.0.0.1:7946', state: 'alive', incarnation: 1, record: encodeOne('api') } as never);
    expect(r.lookup('api').map((i) => i.pool).sort()).toEqual(['eu', 'us']);
    expect(r.lookup('api', { pool: 'us' }).map((i) => i.source)).toEqual(['etcd']);
    for (let i = 0; i < 5; i++) expect(r.pick('api')?.pool).toBe('eu');
    expect(r.pick('api', { pool: 'us' })?.pool).toBe('us');
    const before = r.index;
    r.setImported('etcd x\u0000api/1', imported('1', 'us'), 'etcd');
    expect(r.index).toBe(before); // the same entry again is no change
    r.setImported('etcd x\u0000api/1', undefined, 'etcd');
    expect(r.lookup('api', { pool: 'us' })).toEqual([]);
  });
});

describe('the bridges option', () => {
  test.each([
    [{ bridges: {} }, 'bridges'],
    [{ bridges: [{ consul: {} }] }, 'bridges[0]'],
    [{ bridges: [{ etcd: { endpoints: '127.0.0.1:2379' } }] }, 'bridges[0].etcd.endpoints'],
    [{ bridges: [{ etcd: { endpoints: 'http://127.0.0.1:2379', prefix: 'services' } }] }, 'bridges[0].etcd.prefix'],
    [{ bridges: [{ etcd: { endpoints: 'http://127.0.0.1:2379', ttlS: 1 } }] }, 'bridges[0].etcd.ttlS'],
    [{ bridges: [{ etcd: { endpoints: 'http://127.0.0.1:2379', tls: { ca: '/etc/ca.pem' } } }] }, 'bridges[0].etcd.tls.ca'],
    [{ bridges: [{ etcd: { endpoints: 'http://127.0.0.1:2379', lease: 3 } }] }, 'bridges[0].etcd.lease'],
    [{ bridges: [{ zookeeper: { connect: 'localhost' } }] }, 'bridges[0].zookeeper.connect'],
    [{ bridges: [{ zookeeper: { connect: '127.0.0.1:2181', root: 'services' } }] }, 'bridges[0].zookeeper.root'],
    [{ bridges: [{ zookeeper: { connect: '127.0.0.1:2181', export: 'yes' } }] }, 'bridges[0].zookeeper.export'],
    [{ pool: 'eu west' }, 'pool'],
  ])('%j is refused, naming %s', async (options, option) => {
    await expect(Grapevine.start({ bind: '127.0.0.1:0', ...(options as object) })).rejects.toMatchObject({ code: 'grapevine.invalid-option', option });
  });
});

/** A record with one instance of `service` (id "w@1": ids may hold the path separator). */
function encodeOne(service = 'web'): Uint8Array {
  return encodeRecord({ meta: {}, services: [{ id: 'w@1', name: service, address: '', port: 80, tags: ['a'], meta: { k: 'v' }, weight: 2, health: 'warning', checks: [], taggedAddresses: {}, warningWeight: 1 }] });
}
