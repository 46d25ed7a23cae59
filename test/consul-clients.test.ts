/**
 * Real Consul clients against a member's HTTP API on 127.0.0.1: the `consul` npm package
 * (register, deregister, catalog and health reads, a watch over blocking queries) and Debian's
 * python3-consul. A second member checks that what the API registered spread by gossip.
 */
import { execFile } from 'node:child_process';
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
let host = '';
let port = 0;

describe('real Consul clients', () => {
  beforeAll(async () => {
    a = await Grapevine.start({ name: 'a', bind: '127.0.0.1:0', profile: 'local', http: '127.0.0.1:0' });
    b = await Grapevine.start({ name: 'b', bind: '127.0.0.1:0', profile: 'local', seeds: [a.address] });
    [host, port] = [(a.listening('http') as string).split(':')[0] as string, Number((a.listening('http') as string).split(':')[1])];
    await until(() => a.members().length === 2 && b.members().length === 2);
  }, 30_000);

  afterAll(async () => {
    await Promise.all([a?.close(), b?.close()]);
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
    expect(members.map((m) => m.Name).sort()).toEqual(['a', 'b']);

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
    c.kv.get("missing")
    out["kv"] = "answered"
except consul.ConsulException as e:
    out["kv"] = str(e)
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
    expect(out.kv).toContain('not served');
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
