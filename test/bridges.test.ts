/**
 * Bridges against real stores: etcd (Debian's etcd-server, read back with etcdctl) and
 * ZooKeeper (Debian's zookeeper, read back with a plain client), each started once for its
 * block on free loopback ports with a temporary directory, killed and restarted mid-run.
 * The same contract runs against both.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { Resolver } from 'node:dns/promises';
import { createInterface } from 'node:readline';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { AgentProcess } from '../src/cli/processes.js';
import { type BridgeOptions, Grapevine, type GrapevineOptions } from '../src/index.js';
import { EtcdServer, hasEtcd, hasZookeeper, ZkRaw, ZookeeperServer } from './stores.js';
import { until } from './until.js';

interface Harness {
  kind: 'etcd' | 'zookeeper';
  available: () => boolean;
  start(): Promise<void>;
  stop(): Promise<void>;
  kill(): Promise<void>;
  restart(wipe: boolean): Promise<void>;
  /** A bridge to the store, under `space` ("" for the default prefix or root). Crashes show within ~2 s. */
  bridge(space: string, extra?: Record<string, unknown>): BridgeOptions;
  /** What the store's own client shows under `space`: relative path → value. */
  entries(space: string): Promise<Map<string, string>>;
  /** Writes or removes an entry as another tool would. */
  put(space: string, path: string, value: string): Promise<void>;
  remove(space: string, path: string): Promise<void>;
  /** The `node` of an entry that names none. */
  origin(space: string, path: string): string;
  /** The agent's flags for a bridge under `space`. */
  flags(space: string): string[];
}

function etcdHarness(): Harness {
  const server = new EtcdServer();
  const prefix = (space: string): string => (space === '' ? 'services/' : `${space}/`);
  return {
    kind: 'etcd',
    available: hasEtcd,
    start: () => server.start(),
    stop: () => server.stop(),
    kill: () => server.kill(),
    restart: (wipe) => server.restart(wipe),
    bridge: (space, extra = {}) => ({ etcd: { endpoints: server.url, ttlS: 2, ...(space === '' ? {} : { prefix: prefix(space) }), ...extra } }),
    entries: async (space) => new Map([...server.entries(prefix(space))].map(([k, v]) => [k.slice(prefix(space).length), v])),
    put: async (space, path, value) => void server.ctl('put', prefix(space) + path, value),
    remove: async (space, path) => void server.ctl('del', prefix(space) + path),
    origin: (space, path) => `etcd:${prefix(space)}${path}`,
    flags: (space) => ['--etcd', server.url, '--etcd-prefix', prefix(space)],
  };
}

function zookeeperHarness(): Harness {
  const server = new ZookeeperServer();
  let raw: ZkRaw | undefined;
  const root = (space: string): string => (space === '' ? '/services' : `/${space}`);
  const client = async (): Promise<ZkRaw> => (raw ??= await ZkRaw.connect(server.connect, 5_000));
  return {
    kind: 'zookeeper',
    available: hasZookeeper,
    start: () => server.start(),
    async stop() {
      raw?.close();
      await server.stop();
    },
    async kill() {
      raw?.close();
      raw = undefined;
      await server.kill();
    },
    restart: (wipe) => server.restart(wipe),
    bridge: (space, extra = {}) => ({ zookeeper: { connect: server.connect, sessionTimeoutMs: 2_000, ...(space === '' ? {} : { root: root(space) }), ...extra } }),
    // A client that found no server just after a restart is dropped and made again on the next poll.
    entries: async (space) => (await client().catch(() => undefined))?.tree(root(space)) ?? new Map(),
    put: async (space, path, value) => (await client()).put(`${root(space)}/${path}`, value),
    remove: async (space, path) => (await client()).remove(`${root(space)}/${path}`),
    origin: (space, path) => `zookeeper:${root(space)}/${path}`,
    flags: (space) => ['--zookeeper', server.connect, '--zookeeper-root', root(space)],
  };
}

/** A Curator ServiceInstance as a Java service using curator-x-discovery writes it. */
const CURATOR = JSON.stringify({
  name: 'billing', id: '6c3e5a1e-1a7b-4cbb-9d25-0f0a4b7c2e11', address: '10.1.2.3', port: 7000, sslPort: null,
  payload: null, registrationTimeUTC: 1764460800000, serviceType: 'DYNAMIC', uriSpec: null,
});

for (const h of [etcdHarness(), zookeeperHarness()]) {
  const ready = h.available();
  describe.skipIf(!ready)(`bridge to ${h.kind}`, () => {
    const members: Grapevine[] = [];
    const children: ChildProcess[] = [];
    const start = async (options: GrapevineOptions): Promise<Grapevine> => {
      const gv = await Grapevine.start({ bind: '127.0.0.1:0', profile: 'local', ...options });
      members.push(gv);
      return gv;
    };

    beforeAll(() => h.start(), 60_000);
    afterAll(async () => {
      await Promise.all(members.map((m) => m.close()));
      for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
      await h.stop();
    }, 30_000);

    test('exports its own instances, imports other tools\' entries on every member, finds seeds, and leaves nothing behind', async () => {
      const a = await start({ name: 'a', bridges: [h.bridge('')], http: '127.0.0.1:0', dns: '127.0.0.1:0' });
      // No seeds given: b finds a under _members/default/ in the store.
      const b = await start({ name: 'b', bridges: [h.bridge('')] });
      await until(() => b.members().some((m) => m.name === 'a' && m.state === 'alive'), 10_000);

      const web = await a.register({ name: 'web', port: 8080, tags: ['v1'], meta: { zone: 'z1' } });
      await until(async () => (await h.entries('')).has('web/web@a@default'), 10_000);
      const value = JSON.parse((await h.entries('')).get('web/web@a@default') as string) as Record<string, unknown>;
      if (h.kind === 'etcd') {
        expect(value).toEqual({ name: 'web', id: 'web', address: '127.0.0.1', port: 8080, tags: ['v1'], meta: { zone: 'z1' }, health: 'passing', weight: 1, node: 'a', pool: 'default' });
      } else {
        expect(value).toMatchObject({ name: 'web', address: '127.0.0.1', port: 8080, serviceType: 'DYNAMIC', enabled: true, payload: { id: 'web', node: 'a', pool: 'default', tags: ['v1'] } });
        expect(typeof value['registrationTimeUTC']).toBe('number');
      }
      expect((await h.entries('')).get(`_members/default/a`)).toBe(a.address);

      // The examples this project grew from, and entries that are not services.
      const watch = a.watch('service-a', { initial: false });
      await h.put('', 'service-a', '127.0.0.1:8080');
      await h.put('', 'billing/6c3e5a1e', CURATOR);
      await h.put('', '_private/x', '10.0.0.1:1');
      await h.put('', 'broken/1', 'not an address');
      for (const m of [a, b]) {
        await until(() => m.lookup('service-a').length === 1 && m.lookup('billing').length === 1, 10_000);
        expect(m.lookup('service-a')[0]).toMatchObject({ id: 'service-a', address: '127.0.0.1', port: 8080, health: 'passing', source: h.kind, pool: '', node: h.origin('', 'service-a') });
        expect(m.lookup('billing')[0]).toMatchObject({ id: '6c3e5a1e-1a7b-4cbb-9d25-0f0a4b7c2e11', address: '10.1.2.3', port: 7000, source: h.kind });
        expect(m.services()).not.toContain('_private');
        expect(m.services()).not.toContain('broken');
        // Its own pool's entries are never imported back: the one `web` is the gossip one. Gossip and
        // the store race (CI once saw the store win on b), so wait for gossip's copy before comparing.
        await until(() => m.lookup('web').some((i) => i.source === 'gossip'), 10_000);
        expect(m.lookup('web').map((i) => i.source)).toEqual(['gossip']);
      }
      await until(() => (a.stats().interfaces['bridges']?.[`${h.kind}.badEntries`] ?? 0) >= 1, 5_000);
      expect((await watch.next()).value).toMatchObject({ type: 'added', instance: { service: 'service-a', source: h.kind } });
      await watch.return?.();
      // The HTTP API lists an imported instance under an external node; DNS answers for it.
      const health = await (await fetch(`http://${a.listening('http') as string}/v1/health/service/service-a`)).json() as { Node: { Node: string; Meta: Record<string, string> }; Service: { Port: number } }[];
      expect(health).toMatchObject([{ Node: { Node: h.origin('', 'service-a'), Meta: { 'external-source': h.kind } }, Service: { Port: 8080 } }]);
      const resolver = new Resolver({ timeout: 2_000, tries: 1 });
      resolver.setServers([a.listening('dns') as string]);
      expect((await resolver.resolveSrv('service-a.service.grapevine')).map((r) => r.port)).toEqual([8080]);

      // Health changes rewrite the entry; removals, deregistration and close delete.
      await a.register({ name: 'web', port: 8080, tags: ['v1'], meta: { zone: 'z1' }, health: 'critical' });
      await until(async () => {
        const v = JSON.parse((await h.entries('')).get('web/web@a@default') ?? '{}') as Record<string, unknown>;
        return h.kind === 'etcd' ? v['health'] === 'critical' : v['enabled'] === false;
      }, 10_000);
      await h.remove('', 'service-a');
      await until(() => a.lookup('service-a').length === 0 && b.lookup('service-a').length === 0, 10_000);
      await web.deregister();
      await until(async () => !(await h.entries('')).has('web/web@a@default'), 10_000);
      await b.register({ name: 'api', port: 9000 });
      await until(async () => (await h.entries('')).has('api/api@b@default'), 10_000);
      await a.close();
      await b.leave();
      const left = [...(await h.entries(''))].filter(([, v]) => v !== '').map(([k]) => k).sort();
      expect(left).toEqual(['_private/x', 'billing/6c3e5a1e', 'broken/1']);
    }, 60_000);

    test('members started at the same moment with no seed anywhere find each other through the store', async () => {
      // Neither may see the other's seed entry at its first look: then each starts a cluster, and
      // the store is asked again every rejoinIntervalMs (10 s with the local profile).
      const trio = await Promise.all(['x', 'y', 'z'].map((name) => start({ name, bridges: [h.bridge('together')] })));
      await until(() => trio.every((m) => m.members().filter((o) => o.state === 'alive').length === 3), 30_000);
    }, 60_000);

    test('federation: two pools that share no gossip see each other\'s services, each pick staying in its own pool', async () => {
      const eu = { pool: 'eu', keyring: [randomBytes(32)], bridges: [h.bridge('fed')] };
      const us = { pool: 'us', keyring: [randomBytes(32)], bridges: [h.bridge('fed')] };
      const eu1 = await start({ name: 'eu-1', ...eu });
      const eu2 = await start({ name: 'eu-2', ...eu });
      const us1 = await start({ name: 'us-1', ...us });
      await eu1.register({ name: 'api', port: 1001 });
      await us1.register({ name: 'api', port: 2001 });
      await until(() => eu2.lookup('api').length === 2 && us1.lookup('api').length === 2, 15_000);
      expect(eu2.lookup('api').map((i) => `${i.pool} ${i.node} ${i.source}`).sort()).toEqual(['eu eu-1 gossip', `us us-1 ${h.kind}`]);
      expect(eu2.lookup('api', { pool: 'us' }).map((i) => i.port)).toEqual([2001]);
      for (let i = 0; i < 10; i++) {
        expect(eu2.pick('api')?.pool).toBe('eu');
        expect(us1.pick('api')?.pool).toBe('us');
      }
      // Different keys: the pools never gossip with each other.
      expect(eu2.members().map((m) => m.name).sort()).toEqual(['eu-1', 'eu-2']);
      expect(us1.members().map((m) => m.name)).toEqual(['us-1']);
      await eu1.leave();
      await until(() => us1.lookup('api').length === 1 && eu2.lookup('api').length === 1, 10_000);
      // With its own pool gone, a pick takes the other pool's instance.
      expect(eu2.pick('api')?.pool).toBe('us');
    }, 60_000);

    test('the agent: --pool and the bridge flags export its --service and import the store\'s', async () => {
      await h.put('agent', 'legacy', '127.0.0.1:7100');
      const agent = new AgentProcess({ name: 'agent-1', bind: '127.0.0.1:0', profile: 'local', services: [{ name: 'from-agent', port: 7101 }], flags: ['--pool', 'blue', ...h.flags('agent')] });
      try {
        await agent.ready();
        await until(async () => (await h.entries('agent')).has('from-agent/from-agent@agent-1@blue'), 10_000);
        let found: Awaited<ReturnType<AgentProcess['lookup']>> = [];
        await until(async () => (found = await agent.lookup('legacy')).length > 0, 10_000);
        expect(found[0]).toMatchObject({ node: h.origin('agent', 'legacy'), port: 7100 });
      } finally {
        await agent.stop();
      }
      await until(async () => !(await h.entries('agent')).has('from-agent/from-agent@agent-1@blue'), 10_000);
    }, 60_000);

    test('a crashed member\'s entries go when its lease or session does', async () => {
      const child = spawn(process.execPath, ['--import', 'tsx', 'test/fixtures/member.ts',
        JSON.stringify({ name: 'doomed', bind: '127.0.0.1:0', profile: 'local', bridges: [h.bridge('crash')] }),
        JSON.stringify({ name: 'doomed-svc', port: 4242 })], { stdio: ['ignore', 'pipe', 'inherit'] });
      children.push(child);
      await new Promise<void>((resolve, reject) => {
        createInterface({ input: child.stdout! }).on('line', (l) => l.startsWith('ready') && resolve());
        child.once('exit', () => reject(new Error('member exited')));
      });
      await until(async () => (await h.entries('crash')).has('doomed-svc/doomed-svc@doomed@default'), 10_000);
      const killedAt = Date.now();
      process.kill(child.pid as number, 'SIGKILL');
      await until(async () => [...(await h.entries('crash'))].every(([, v]) => v === ''), 20_000);
      expect(Date.now() - killedAt).toBeGreaterThan(1_000); // gone by expiry, not by a goodbye
    }, 60_000);

    test('a flapping check costs one round of writes per writeIntervalMs after a short burst, and the last health wins', async () => {
      const m = await start({ name: 'flap', bridges: [h.bridge('flap', { writeIntervalMs: 500 })] });
      const svc = await m.register({ name: 'flappy', port: 5000, check: { ttlMs: 60_000 } });
      svc.pass();
      await until(async () => (await h.entries('flap')).has('flappy/flappy@flap@default'), 10_000);
      const writes = (): number => m.stats().interfaces['bridges']?.[`${h.kind}.writes`] ?? 0;
      const before = writes();
      const t0 = Date.now();
      for (let i = 0; i < 100; i++) {
        if (i % 2 === 0) svc.fail();
        else svc.pass();
        await new Promise((r) => setTimeout(r, 20));
      }
      svc.fail();
      const elapsed = Date.now() - t0;
      await until(async () => {
        const v = JSON.parse((await h.entries('flap')).get('flappy/flappy@flap@default') ?? '{}') as Record<string, unknown>;
        return h.kind === 'etcd' ? v['health'] === 'critical' : v['enabled'] === false;
      }, 10_000);
      // 101 health changes; a burst of 3 rounds, then one per 500 ms, each writing the one entry.
      expect(writes() - before).toBeLessThanOrEqual(Math.ceil((Date.now() - t0) / 500) + 3);
      expect(writes() - before).toBeGreaterThanOrEqual(1);
      expect(elapsed).toBeGreaterThan(1_000);
    }, 60_000);

    test('the store down at start, killed mid-run and rebuilt empty: gossip goes on, exports come back, imports are listed again', async () => {
      await h.kill();
      const m = await start({ name: 'patient', bridges: [h.bridge('outage')] });
      const g = await start({ name: 'plain', seeds: [m.address] });
      await g.register({ name: 'gossiped', port: 6000 });
      await m.register({ name: 'early', port: 6001 });
      await until(() => m.lookup('gossiped').length === 1, 10_000);
      expect(m.stats().interfaces['bridges']?.[`${h.kind}.connected`]).toBe(0);

      await h.restart(false);
      await until(async () => (await h.entries('outage')).has('early/early@patient@default'), 20_000);
      await h.put('outage', 'legacy', '127.0.0.1:7000');
      await until(() => m.lookup('legacy').length === 1, 10_000);

      // Down while running: nothing local is lost, nothing imported is dropped for the outage.
      await h.kill();
      await m.register({ name: 'during', port: 6002 });
      await new Promise((r) => setTimeout(r, 3_000));
      expect(m.lookup('gossiped')).toHaveLength(1);
      expect(m.lookup('legacy')).toHaveLength(1);
      expect(m.lookup('during')).toHaveLength(1);

      // Back with no data at all: this member's entries are written again, and the import that
      // is no longer there goes.
      await h.restart(true);
      await until(async () => {
        const e = await h.entries('outage');
        return e.has('early/early@patient@default') && e.has('during/during@patient@default') && e.has('_members/default/patient');
      }, 30_000);
      await until(() => m.lookup('legacy').length === 0, 15_000);
      expect(m.lookup('gossiped')).toHaveLength(1);
    }, 120_000);
  });
}

describe.skipIf(!hasEtcd())('bridge to etcd with TLS and password auth', () => {
  const server = new EtcdServer(true);
  const members: Grapevine[] = [];
  beforeAll(async () => {
    await server.start();
    server.enableAuth('s3cret');
  }, 60_000);
  afterAll(async () => {
    await Promise.all(members.map((m) => m.close()));
    await server.stop();
  });

  test('with the CA and the password it exports; with a wrong password it starts, stays unconnected and writes nothing', async () => {
    const tls = { ca: server.ca as string };
    const good = await Grapevine.start({ name: 'good', bind: '127.0.0.1:0', bridges: [{ etcd: { endpoints: server.url, tls, auth: { username: 'root', password: 's3cret' } } }] });
    members.push(good);
    await good.register({ name: 'secure', port: 8443 });
    await until(() => server.entries('services/').has('services/secure/secure@good@default'), 10_000);
    const bad = await Grapevine.start({ name: 'bad', bind: '127.0.0.1:0', bridges: [{ etcd: { endpoints: server.url, tls, auth: { username: 'root', password: 'wrong' } } }] });
    members.push(bad);
    await bad.register({ name: 'intruder', port: 1 });
    await new Promise((r) => setTimeout(r, 2_000));
    expect(bad.stats().interfaces['bridges']?.['etcd.connected']).toBe(0);
    expect([...server.entries('services/').keys()].some((k) => k.includes('intruder') || k.includes('@bad@'))).toBe(false);
    // It still imports nothing it could not read, and its own gossip instance stands.
    expect(bad.lookup('secure')).toEqual([]);
    expect(bad.lookup('intruder')).toHaveLength(1);
  }, 60_000);
});
