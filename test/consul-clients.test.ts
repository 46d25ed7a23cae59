/**
 * Real Consul clients against a member's HTTP API on 127.0.0.1: the `consul` npm package
 * (register, deregister, catalog and health reads, a watch over blocking queries; then every
 * ordinary agent, check, maintenance, catalog, health and status call it makes) and Debian's
 * python3-consul, against three members: the others check that what the API registered spread by gossip.
 */
import { execFile } from 'node:child_process';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { promisify } from 'node:util';
import Consul from 'consul';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { Grapevine } from '../src/index.js';
import { available, runs } from './needs.js';
import { until } from './until.js';

const PYTHON = '/usr/bin/python3';
const hasPythonConsul = available('python3-consul', runs(PYTHON, ['-c', 'import consul']), 'apt-get install -y python3-consul');

let a: Grapevine;
let b: Grapevine;
let c: Grapevine;
let host = '';
let port = 0;

/** An endpoint for an HTTP check to probe on 127.0.0.1: 200 with `body`. */
async function probeServer(body: string): Promise<{ url: string; close: () => Promise<void> }> {
  const server = createServer((_req, res) => res.end(body));
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/health`;
  return { url, close: () => new Promise((resolve) => server.close(() => resolve())) };
}

/** The fields of a check (as Consul's API answers one) that these tests look at. */
interface ConsulCheck { CheckID: string; Name: string; Status: string; Notes: string; Output: string; Type: string; ServiceID: string; ServiceName: string }

function ids(checks: readonly { CheckID: string }[]): string[] {
  return checks.map((c) => c.CheckID);
}

describe('real Consul clients', () => {
  beforeAll(async () => {
    a = await Grapevine.start({ name: 'a', bind: '127.0.0.1:0', profile: 'local', http: '127.0.0.1:0' });
    b = await Grapevine.start({ name: 'b', bind: '127.0.0.1:0', profile: 'local', seeds: [a.address] });
    c = await Grapevine.start({ name: 'c', bind: '127.0.0.1:0', profile: 'local', seeds: [a.address] });
    [host, port] = [(a.listening('http') as string).split(':')[0] as string, Number((a.listening('http') as string).split(':')[1])];
    await until(() => [a, b, c].every((m) => m.members().length === 3));
  }, 30_000);

  afterAll(async () => {
    await Promise.all([a?.close(), b?.close(), c?.close()]);
  });

  test('the consul npm client: register, catalog and health reads, a watch, deregister', async () => {
    const consul = new Consul({ host, port });
    await consul.agent.service.register({ name: 'billing', id: 'billing-1', port: 9000, tags: ['v2'], meta: { zone: 'eu' }, check: { name: 'billing alive', ttl: '30s', timeout: '1s' } });
    await consul.agent.check.pass('service:billing-1');
    await until(() => b.lookup('billing')[0]?.health === 'passing');
    expect(b.lookup('billing')[0]).toMatchObject({ id: 'billing-1', node: 'a', port: 9000, tags: ['v2'], meta: { zone: 'eu' } });
    expect(await consul.catalog.service.list()).toEqual({ billing: ['v2'] });
    const nodes = await consul.catalog.service.nodes('billing') as { ServiceID: string; Node: string }[];
    expect(nodes.map((n) => [n.Node, n.ServiceID])).toEqual([['a', 'billing-1']]);
    const healthy = await consul.health.service({ service: 'billing', passing: true }) as { Service: { ID: string } }[];
    expect(healthy.map((e) => e.Service.ID)).toEqual(['billing-1']);
    const members = await consul.agent.members() as { Name: string }[];
    expect(members.map((m) => m.Name).sort()).toEqual(['a', 'b', 'c']);

    // A watch: the client's own blocking-query loop sees another member's registration.
    const watch = consul.watch({ method: consul.health.service, options: { service: 'billing', wait: '30s' } });
    const seen: number[] = [];
    watch.on('change', (data: unknown[]) => seen.push(data.length));
    watch.on('error', () => undefined);
    try {
      await until(() => seen.length >= 1);
      expect(seen[0]).toBe(1);
      await b.register({ name: 'billing', id: 'billing-2', port: 9001 });
      await until(() => seen.includes(2));
    } finally {
      watch.end();
    }

    await consul.agent.service.deregister('billing-1');
    await until(() => b.lookup('billing').every((i) => i.id !== 'billing-1'));
    await expect(consul.agent.service.deregister('billing-1')).rejects.toMatchObject({ statusCode: 404 });
  });

  test('the consul npm client: agent, checks of every kind it sends, maintenance, catalog, health and status; sessions refused', async () => {
    const consul = new Consul({ host, port });
    const probe = await probeServer('pong');
    const [HTTP, TTL, DISK] = ['service:payments-1:1', 'service:payments-1:2', 'payments-disk'];
    const checks = async (): Promise<Record<string, ConsulCheck>> => await consul.agent.check.list();
    const passing = async (): Promise<string[]> =>
      ((await consul.health.service({ service: 'payments', passing: true })) as { Service: { ID: string } }[]).map((e) => e.Service.ID);
    try {
      // The agent and the members it sees.
      const self = await consul.agent.self() as { Config: Record<string, unknown>; Member: Record<string, unknown> };
      expect(self.Config).toMatchObject({ NodeName: 'a', Datacenter: 'dc1', Server: false });
      expect(self.Member).toMatchObject({ Name: 'a', Port: Number(a.address.split(':')[1]), Status: 1 });
      const members = await consul.agent.members() as { Name: string; Status: number }[];
      expect(members.map((m) => [m.Name, m.Status]).sort()).toEqual([['a', 1], ['b', 1], ['c', 1]]);

      // A service with an HTTP check and a TTL check; neither names its ID, so both get Consul's default.
      await consul.agent.service.register({
        name: 'payments', id: 'payments-1', port: 9200, tags: ['v3'],
        checks: [
          { name: 'payments http', http: probe.url, interval: '1s', timeout: '3s', notes: 'GET /health' },
          { name: 'payments ttl', ttl: '30s', timeout: '1s', notes: 'the app reports in' },
        ],
      });
      expect((await consul.agent.service.list())['payments-1']).toMatchObject({ ID: 'payments-1', Service: 'payments', Port: 9200, Tags: ['v3'] });
      await until(async () => (await checks())[HTTP]?.Output === `HTTP GET ${probe.url}: 200 OK Output: pong`);
      const listed = await checks();
      expect(Object.keys(listed).sort()).toEqual([HTTP, TTL]);
      expect(listed[HTTP]).toMatchObject({ Name: 'payments http', Notes: 'GET /health', Type: 'http', Status: 'passing', ServiceID: 'payments-1', Interval: '1s', Timeout: '3s' });
      expect(listed[TTL]).toMatchObject({ Name: 'payments ttl', Notes: 'the app reports in', Type: 'ttl', Status: 'critical', Output: '', ServiceID: 'payments-1' });

      // TTL reports: the note is the check's Output.
      for (const [report, status] of [['warn', 'warning'], ['fail', 'critical'], ['pass', 'passing']] as const) {
        await consul.agent.check[report]({ id: TTL, note: `${report} from the app` });
        expect((await checks())[TTL]).toMatchObject({ Status: status, Output: `${report} from the app` });
      }
      expect(await passing()).toEqual(['payments-1']);

      // A standalone TTL check of the instance: critical until it reports, and it travels with the others.
      await consul.agent.check.register({ name: 'payments disk', checkid: DISK, serviceid: 'payments-1', ttl: '30s', timeout: '1s', notes: 'free space' });
      expect((await checks())[DISK]).toMatchObject({ Name: 'payments disk', Notes: 'free space', Type: 'ttl', Status: 'critical', ServiceID: 'payments-1' });
      expect((await consul.health.state('critical')).map((c) => [c.CheckID, c.ServiceID])).toEqual([[DISK, 'payments-1']]);
      expect(await passing()).toEqual([]);
      const travelled = (): { id: string; name: string; type: string; notes: string }[] =>
        (b.lookup('payments')[0]?.checks ?? []).map(({ id, name, type, notes }) => ({ id, name, type, notes })).sort((x, y) => (x.id < y.id ? -1 : 1));
      await until(() => travelled().length === 3);
      expect(travelled()).toEqual([
        { id: DISK, name: 'payments disk', type: 'ttl', notes: 'free space' },
        { id: HTTP, name: 'payments http', type: 'http', notes: 'GET /health' },
        { id: TTL, name: 'payments ttl', type: 'ttl', notes: 'the app reports in' },
      ]);
      await consul.agent.check.deregister(DISK);
      expect(Object.keys(await checks()).sort()).toEqual([HTTP, TTL]);
      await expect(consul.agent.check.deregister(DISK)).rejects.toMatchObject({ statusCode: 404 });
      await until(() => travelled().length === 2);
      expect(await passing()).toEqual(['payments-1']);

      // Maintenance of the instance, then of the node: a critical check with the reason, out of the passing list.
      await consul.agent.service.maintenance({ id: 'payments-1', enable: true, reason: 'reindex' });
      expect((await checks())['_service_maintenance:payments-1']).toMatchObject({ Status: 'critical', Notes: 'reindex', ServiceID: 'payments-1' });
      expect(await passing()).toEqual([]);
      await consul.agent.service.maintenance({ id: 'payments-1', enable: false });
      expect(Object.keys(await checks()).sort()).toEqual([HTTP, TTL]);
      expect(await passing()).toEqual(['payments-1']);
      await consul.agent.maintenance({ enable: true, reason: 'kernel upgrade' });
      const inMaintenance = await consul.health.node('a');
      expect(ids(inMaintenance)).toEqual(['serfHealth', '_node_maintenance', HTTP, TTL]);
      expect(inMaintenance[1]).toMatchObject({ Status: 'critical', Notes: 'kernel upgrade', ServiceID: '' });
      expect(await passing()).toEqual([]);
      await consul.agent.maintenance({ enable: false });
      expect(ids(await consul.health.node('a'))).toEqual(['serfHealth', HTTP, TTL]);
      expect(await passing()).toEqual(['payments-1']);

      // Catalog and health reads.
      expect(await consul.catalog.datacenters()).toEqual(['dc1']);
      expect((await consul.catalog.node.list() as { Node: string }[]).map((n) => n.Node).sort()).toEqual(['a', 'b', 'c']);
      const onA = await consul.catalog.node.services('a') as { Node: { Node: string }; Services: Record<string, unknown> };
      expect(onA.Node.Node).toBe('a');
      expect(onA.Services).toEqual({ 'payments-1': expect.objectContaining({ ID: 'payments-1', Service: 'payments', Port: 9200, Tags: ['v3'] }) });
      expect((await consul.catalog.service.list()).payments).toEqual(['v3']);
      const entries = await consul.catalog.service.nodes('payments') as { Node: string; ServiceID: string; ServicePort: number }[];
      expect(entries.map((e) => [e.Node, e.ServiceID, e.ServicePort])).toEqual([['a', 'payments-1', 9200]]);
      const serviceChecks = await consul.health.checks('payments');
      expect(serviceChecks.map((c) => [c.CheckID, c.ServiceName, c.Status])).toEqual([[HTTP, 'payments', 'passing'], [TTL, 'payments', 'passing']]);

      // No leader: the first live member by name, and the live members.
      expect(await consul.status.leader()).toBe(a.address);
      expect(await consul.status.peers()).toEqual([a.address, b.address, c.address]);

      // A missing key is "no such key"; what cannot be had is an error the client raises, with the reason, not "no sessions".
      expect(await consul.kv.get('missing')).toBeUndefined();
      await expect(consul.session.list()).rejects.toMatchObject({ statusCode: 400, message: 'a session needs consensus; this store is eventually consistent\n' });

      await consul.agent.service.deregister('payments-1');
      expect(await consul.agent.service.list()).toEqual({});
      expect(await consul.agent.check.list()).toEqual({});
      await until(() => b.lookup('payments').length === 0);
    } finally {
      // Leave nothing behind for the next tests, whatever failed above.
      a.maintenance(false);
      await a.deregister('payments-1');
      await probe.close();
    }
  });

  test.skipIf(!hasPythonConsul)('python3-consul: catalog.services() and health.service(name, passing=True)', async () => {
    await b.register({ name: 'search', id: 'search-1', port: 7000, tags: ['py'] });
    await until(() => a.lookup('search').length === 1);
    const script = `
import json, sys, consul
c = consul.Consul(host=sys.argv[1], port=int(sys.argv[2]))
index, services = c.catalog.services()
index2, entries = c.health.service('search', passing=True)
print(json.dumps({"index": int(index), "services": services, "ids": [e["Service"]["ID"] for e in entries], "nodes": [e["Node"]["Node"] for e in entries]}))
`;
    const { stdout } = await promisify(execFile)(PYTHON, ['-c', script, host, String(port)], { timeout: 20_000 });
    const out = JSON.parse(stdout) as { index: number; services: Record<string, string[]>; ids: string[]; nodes: string[] };
    expect(out.index).toBeGreaterThan(0);
    expect(out.services.search).toEqual(['py']);
    expect(out).toMatchObject({ ids: ['search-1'], nodes: ['b'] });
  });

  test.skipIf(!hasPythonConsul)('python3-consul: registration with a check (lowercase fields), TTL, a standalone check, maintenance, errors it can read', async () => {
    const script = `
import json, sys, consul
c = consul.Consul(host=sys.argv[1], port=int(sys.argv[2]))
out = {}
out["registered"] = c.agent.service.register("ledger", service_id="ledger-1", port=7100, tags=["py"], check=consul.Check.ttl("30s"))
out["passed"] = c.agent.check.ttl_pass("service:ledger-1", notes="ready")
out["added"] = c.agent.check.register("ledger disk", check=consul.Check.ttl("30s"), check_id="ledger-disk", service_id="ledger-1")
c.agent.check.ttl_pass("ledger-disk")
out["checks"] = sorted(c.agent.checks().keys())
out["maint"] = c.agent.service.maintenance("ledger-1", "true", reason="reindex")
index, entries = c.health.service("ledger", passing=True)
out["passing_in_maintenance"] = len(entries)
c.agent.service.maintenance("ledger-1", "false")
index, entries = c.health.service("ledger", passing=True)
out["passing"] = [[ch["CheckID"], ch["Status"], ch["Output"]] for e in entries for ch in e["Checks"]]
try:
    c.session.list()
    out["session"] = "answered"
except consul.ConsulException as e:
    out["session"] = str(e)
try:
    c.agent.service.register("bad", port="not a number")
    out["bad"] = "accepted"
except consul.ConsulException as e:
    out["bad"] = str(e)
print(json.dumps(out))
`;
    const { stdout } = await promisify(execFile)(PYTHON, ['-c', script, host, String(port)], { timeout: 20_000 });
    const out = JSON.parse(stdout) as Record<string, unknown>;
    expect(out).toMatchObject({ registered: true, passed: true, added: true, maint: true, passing_in_maintenance: 0 });
    expect(out.checks).toEqual(['ledger-disk', 'service:ledger-1']);
    expect(out.passing).toEqual(expect.arrayContaining([['service:ledger-1', 'passing', 'ready'], ['ledger-disk', 'passing', '']]));
    // What it cannot have yet is an error it raises, not a silent "no such key".
    expect(out.session).toContain('a session needs consensus');
    expect(out.bad).toContain('Port: must be an integer');
    // The check registered with lowercase fields travels: another member answers it.
    await until(() => b.lookup('ledger')[0]?.checks.map((c) => c.id).sort().join() === 'ledger-disk,service:ledger-1');
    // Its deregistrations (GET, as Consul took them before 1.0).
    const gone = `
import json, sys, consul
c = consul.Consul(host=sys.argv[1], port=int(sys.argv[2]))
print(json.dumps([c.agent.check.deregister("ledger-disk"), c.agent.service.deregister("ledger-1")]))
`;
    expect(JSON.parse((await promisify(execFile)(PYTHON, ['-c', gone, host, String(port)], { timeout: 20_000 })).stdout)).toEqual([true, true]);
    await until(() => b.lookup('ledger').length === 0);
  });
});
