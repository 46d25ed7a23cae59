/**
 * The Consul-compatible HTTP API against real members on 127.0.0.1: the registration body that
 * this project grew from, sent exactly as written; reads in Consul's shapes; blocking queries;
 * Consul's errors; tokens. Waits are bounded; no assertion is about speed.
 */
import { createServer, type Server } from 'node:http';
import { Registry } from 'prom-client';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { Grapevine } from '../src/index.js';
import { until } from './until.js';

let a: Grapevine;
let b: Grapevine;
let api = '';
let web: Server;
let webPort = 0;
let webHits = 0;

async function call(method: string, path: string, body?: unknown, headers: Record<string, string> = {}): Promise<{ status: number; index: string | null; json: unknown; text: string }> {
  const res = await fetch(`http://${api}${path}`, { method, headers, ...(body !== undefined ? { body: typeof body === 'string' ? body : JSON.stringify(body) } : {}) });
  const text = await res.text();
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch {
    json = undefined;
  }
  return { status: res.status, index: res.headers.get('x-consul-index'), json, text };
}

describe('Consul-compatible HTTP API', () => {
  beforeAll(async () => {
    web = createServer((_req, res) => {
      webHits++;
      res.end('ok');
    });
    await new Promise<void>((r) => web.listen(8080, '127.0.0.1', r).once('error', () => web.listen(0, '127.0.0.1', r)));
    webPort = (web.address() as { port: number }).port;
    a = await Grapevine.start({ name: 'a', bind: '127.0.0.1:0', profile: 'local', http: '127.0.0.1:0' });
    b = await Grapevine.start({ name: 'b', bind: '127.0.0.1:0', profile: 'local', seeds: [a.address] });
    api = a.listening('http') as string;
    await until(() => a.members().length === 2 && b.members().length === 2);
  }, 30_000);

  afterAll(async () => {
    await Promise.all([a?.close(), b?.close()]);
    await new Promise((r) => web.close(r));
  });

  test('the registration body from the integration example, as written: the instance appears on another member, its HTTP check runs', async () => {
    const body = `{"Name":"service-a","ID":"service-a-1","Address":"127.0.0.1","Port":${webPort},"Check":{"HTTP":"http://127.0.0.1:${webPort}/health","Interval":"10s"}}`;
    const res = await call('PUT', '/v1/agent/service/register', body); // no Content-Type, as curl -X PUT -d sends it
    expect(res.status).toBe(200);
    await until(() => b.lookup('service-a').length === 1 && b.lookup('service-a')[0]?.health === 'passing');
    const [instance] = b.lookup('service-a');
    expect(instance).toMatchObject({ id: 'service-a-1', node: 'a', address: '127.0.0.1', port: webPort });
    expect(webHits).toBeGreaterThan(0);
    const services = await call('GET', '/v1/agent/services');
    expect(services.json).toMatchObject({ 'service-a-1': { ID: 'service-a-1', Service: 'service-a', Port: webPort, Address: '127.0.0.1' } });
    const checks = await call('GET', '/v1/agent/checks');
    expect(checks.json).toMatchObject({ 'service:service-a-1': { CheckID: 'service:service-a-1', Status: 'passing', Type: 'http', Interval: '10s', ServiceID: 'service-a-1' } });
  });

  test('catalog and health reads in Consul\'s shapes, with X-Consul-Index on every response', async () => {
    await b.register({ name: 'service-a', id: 'b-1', port: 9001, tags: ['v2'] });
    await until(() => a.lookup('service-a').length === 2);
    const catalog = await call('GET', '/v1/catalog/service/service-a?tag=v2');
    expect(catalog.json).toEqual([expect.objectContaining({ Node: 'b', ServiceID: 'b-1', ServiceName: 'service-a', ServiceTags: ['v2'], ServicePort: 9001, Datacenter: 'dc1' })]);
    expect(Number(catalog.index)).toBeGreaterThan(0);
    const services = await call('GET', '/v1/catalog/services');
    expect(services.json).toEqual({ 'service-a': ['v2'] });
    const health = await call('GET', '/v1/health/service/service-a?passing');
    const entries = health.json as { Node: { Node: string }; Service: { ID: string }; Checks: { CheckID: string; Status: string }[] }[];
    expect(entries.map((e) => e.Service.ID).sort()).toEqual(['b-1', 'service-a-1']);
    expect(entries.find((e) => e.Service.ID === 'b-1')?.Checks.map((c) => c.CheckID)).toEqual(['serfHealth', 'service:b-1']);
    const nodes = await call('GET', '/v1/catalog/nodes');
    expect((nodes.json as { Node: string }[]).map((n) => n.Node).sort()).toEqual(['a', 'b']);
    const node = await call('GET', '/v1/catalog/node/b');
    expect(node.json).toMatchObject({ Node: { Node: 'b', Address: '127.0.0.1' }, Services: { 'b-1': { Service: 'service-a' } } });
    expect((await call('GET', '/v1/catalog/service/nothing')).json).toEqual([]);
    const dcs = await call('GET', '/v1/catalog/datacenters');
    expect(dcs.json).toEqual(['dc1']);
    expect(Number(dcs.index)).toBeGreaterThan(0); // every read carries an index
    expect((await call('GET', '/v1/status/leader')).json).toBe(a.address);
    const members = await call('GET', '/v1/agent/members');
    expect((members.json as { Name: string; Status: number }[]).map((m) => [m.Name, m.Status]).sort()).toEqual([['a', 1], ['b', 1]]);
    const self = await call('GET', '/v1/agent/self');
    expect(self.json).toMatchObject({ Config: { NodeName: 'a', Datacenter: 'dc1' }, Member: { Name: 'a' } });
    const state = await call('GET', '/v1/health/state/passing');
    expect((state.json as { CheckID: string }[]).filter((c) => c.CheckID === 'serfHealth')).toHaveLength(2);
  });

  test('a blocking query returns on a change to its service, and not before its wait for changes to others', async () => {
    const first = await call('GET', '/v1/health/service/blocked');
    const since = Number(first.index);
    const other = call('GET', `/v1/health/service/blocked?index=${since}&wait=1s`);
    const started = Date.now();
    await b.register({ name: 'unrelated', port: 1 });
    const otherRes = await other;
    expect(Date.now() - started).toBeGreaterThanOrEqual(900); // woken by nothing but its wait
    expect(otherRes.json).toEqual([]);
    const waiting = call('GET', `/v1/health/service/blocked?index=${since}&wait=30s`);
    await new Promise((r) => setTimeout(r, 100));
    await b.register({ name: 'blocked', port: 2 });
    const woke = await waiting;
    expect(Number(woke.index)).toBeGreaterThan(since);
    expect((woke.json as unknown[]).length).toBe(1);
  });

  test('TTL checks through check/pass and check/fail; deregister; Consul\'s errors', async () => {
    expect((await call('PUT', '/v1/agent/service/register', { Name: 'ttl-svc', Port: 1, Check: { TTL: '30s' } })).status).toBe(200);
    const pass = await call('PUT', '/v1/agent/check/pass/service:ttl-svc?note=fine');
    expect(pass.status).toBe(200);
    await until(() => b.lookup('ttl-svc')[0]?.health === 'passing');
    expect((await call('PUT', '/v1/agent/check/update/service:ttl-svc', { Status: 'critical', Output: 'down' })).status).toBe(200);
    await until(() => b.lookup('ttl-svc')[0]?.health === 'critical');
    expect((await call('PUT', '/v1/agent/check/pass/service:service-a-1')).status).toBe(400); // an HTTP check has no TTL
    expect((await call('PUT', '/v1/agent/check/pass/nope')).status).toBe(404);
    expect((await call('PUT', '/v1/agent/service/deregister/nope')).status).toBe(404);
    expect((await call('PUT', '/v1/agent/service/deregister/ttl-svc')).status).toBe(200);
    await until(() => b.lookup('ttl-svc').length === 0);
    const missingName = await call('PUT', '/v1/agent/service/register', { Port: 1 });
    expect([missingName.status, missingName.text]).toEqual([400, 'Name: missing service name\n']);
    const badCheck = await call('PUT', '/v1/agent/service/register', { Name: 'x', Check: { Args: ['/bin/true'], Interval: '10s' } });
    expect(badCheck.status).toBe(400);
    expect(badCheck.text).toContain('Args checks are not supported');
    expect((await call('PUT', '/v1/agent/service/register', '{not json')).status).toBe(400);
    expect((await call('GET', '/v1/agent/service/register')).status).toBe(405);
    expect((await call('PUT', '/v1/agent/service/register', 'x'.repeat(1024 * 1024 + 1))).status).toBe(413);
    expect((await call('GET', '/v1/health/service/x?index=abc')).status).toBe(400);
    expect((await call('GET', '/v1/no/such')).status).toBe(404);
  });

  test('with a token, /v1/status answers probes without one while every other read needs it', async () => {
    const t = await Grapevine.start({ name: 't2', bind: '127.0.0.1:0', http: { bind: '127.0.0.1:0', token: 'secret-token-2' } });
    try {
      const at = `http://${t.listening('http') as string}`;
      expect(await (await fetch(`${at}/v1/status/leader`)).json()).toBe(t.address);
      expect((await fetch(`${at}/v1/status/peers`)).status).toBe(200);
      expect((await fetch(`${at}/v1/agent/self`)).status).toBe(403);
      expect((await fetch(`${at}/v1/catalog/services`)).status).toBe(403);
      expect((await fetch(`${at}/v1/operator/keyring`)).status).toBe(403);
    } finally {
      await t.close();
    }
  });

  test('with a token, writes (and reads unless readOpen) need it; a non-loopback bind needs one', async () => {
    const t = await Grapevine.start({ name: 't', bind: '127.0.0.1:0', http: { bind: '127.0.0.1:0', token: 'secret-token-1', readOpen: true } });
    try {
      const at = `http://${t.listening('http') as string}`;
      expect((await fetch(`${at}/v1/catalog/services`)).status).toBe(200);
      expect((await fetch(`${at}/v1/agent/service/register`, { method: 'PUT', body: '{"Name":"x"}' })).status).toBe(403);
      expect((await fetch(`${at}/v1/agent/service/register`, { method: 'PUT', body: '{"Name":"x"}', headers: { 'X-Consul-Token': 'secret-token-1' } })).status).toBe(200);
      expect((await fetch(`${at}/v1/agent/service/register`, { method: 'PUT', body: '{"Name":"y"}', headers: { Authorization: 'Bearer secret-token-1' } })).status).toBe(200);
      expect((await fetch(`${at}/v1/agent/service/register?token=secret-token-1`, { method: 'PUT', body: '{"Name":"z"}' })).status).toBe(200);
      expect((await fetch(`${at}/v1/agent/service/register?token=wrong`, { method: 'PUT', body: '{"Name":"z"}' })).status).toBe(403);
    } finally {
      await t.close();
    }
    await expect(Grapevine.start({ bind: '127.0.0.1:0', http: '0.0.0.0:0' })).rejects.toMatchObject({ code: 'grapevine.invalid-option', option: 'http.bind' });
    await expect(Grapevine.start({ bind: '127.0.0.1:0', http: api })).rejects.toMatchObject({ code: 'grapevine.bind-failed', option: 'http.bind' });
  });

  test('Prometheus: /metrics in the text format, http_sd targets, and metrics in a service\'s own registry', async () => {
    await b.register({ name: 'scraped', id: 's-1', port: 9100, tags: ['x'], meta: { 'team.name': 'core' } });
    await until(() => a.lookup('scraped').length === 1);
    const res = await fetch(`http://${api}/metrics`);
    expect(res.headers.get('content-type')).toContain('text/plain');
    const text = await res.text();
    expect(text).toMatch(/^grapevine_members\{state="alive"\} 2$/m);
    expect(text).toMatch(/^grapevine_probes_total \d+$/m);
    expect(text).toMatch(/^grapevine_catalog_instances\{service="scraped",health="passing"\} 1$/m);
    expect((await fetch(`http://${api}/v1/agent/metrics?format=prometheus`)).status).toBe(200);
    const after = await (await fetch(`http://${api}/metrics`)).text();
    expect(after).toMatch(/^grapevine_http_requests_total\{method="GET",code="200"\} [1-9]\d*$/m);
    // By route template, one series per endpoint; the build and the process too.
    expect(after).toMatch(/^grapevine_http_request_duration_seconds_count\{method="GET",route="\/v1\/agent\/metrics"\} 1$/m);
    expect(after).toMatch(/^grapevine_build_info\{version="\d+\.\d+\.\d+[^"]*",member="a"\} 1$/m);
    expect(after).toMatch(/^process_resident_memory_bytes \d+$/m);
    expect(after).toMatch(/^nodejs_heap_size_used_bytes \d+$/m);
    // The core's own timings, as histograms in seconds, and its broadcast queue.
    await until(() => a.stats().core.probeRttMs.count >= 2);
    const timed = await (await fetch(`http://${api}/metrics`)).text();
    expect(timed).toMatch(/^# TYPE grapevine_probe_rtt_seconds histogram$/m);
    expect(timed).toMatch(/^grapevine_probe_rtt_seconds_bucket\{le="0\.00025"\} \d+$/m);
    expect(timed).toMatch(/^grapevine_probe_rtt_seconds_bucket\{le="10"\} \d+$/m);
    expect(Number(/^grapevine_probe_rtt_seconds_count (\d+)$/m.exec(timed)?.[1])).toBeGreaterThanOrEqual(2);
    expect(timed).toMatch(/^# TYPE grapevine_push_pull_duration_seconds histogram$/m);
    expect(timed).toMatch(/^grapevine_push_pull_duration_seconds_count \d+$/m);
    expect(timed).toMatch(/^grapevine_broadcast_queue_depth \d+$/m);
    const sd = (await call('GET', '/v1/prometheus/sd')).json as { targets: string[]; labels: Record<string, string> }[];
    expect(sd.find((t) => t.labels.__meta_grapevine_id === 's-1')).toEqual({
      targets: ['127.0.0.1:9100'],
      labels: { __meta_grapevine_service: 'scraped', __meta_grapevine_node: 'b', __meta_grapevine_id: 's-1', __meta_grapevine_tags: ',x,', __meta_grapevine_health: 'passing', __meta_grapevine_meta_team_name: 'core' },
    });
    // A service's own registry, on a member of a cluster of its own (n and m) that joined
    // through n: its join is a push-pull. The scrape shows exactly what the core measured.
    const registry = new Registry();
    const n = await Grapevine.start({ name: 'n', bind: '127.0.0.1:0', profile: 'local' });
    const m = await Grapevine.start({ name: 'm', bind: '127.0.0.1:0', profile: 'local', seeds: [n.address], metrics: { registry }, http: '127.0.0.1:0' });
    try {
      await until(() => m.stats().core.pushPullMs.count >= 1 && m.stats().core.probeRttMs.count >= 2);
      for (let scrape = 0; scrape < 2; scrape++) {
        // No I/O runs during a scrape of this registry, so the core cannot move on meanwhile.
        const text = await registry.metrics();
        const core = m.stats().core;
        expect(text).toMatch(/^grapevine_members\{state="alive"\} 2$/m);
        for (const [name, h] of [['grapevine_probe_rtt_seconds', core.probeRttMs], ['grapevine_push_pull_duration_seconds', core.pushPullMs]] as const) {
          let cumulative = 0;
          h.boundsMs.forEach((boundMs, i) => {
            cumulative += h.counts[i] as number;
            expect(text).toContain(`${name}_bucket{le="${boundMs / 1_000}"} ${cumulative}\n`);
          });
          expect(text).toContain(`${name}_bucket{le="+Inf"} ${h.count}\n`);
          expect(text).toContain(`${name}_count ${h.count}\n`);
          expect(Number(new RegExp(`^${name}_sum (\\S+)$`, 'm').exec(text)?.[1])).toBeCloseTo(h.sumMs / 1_000, 9);
        }
        expect(text).toContain(`grapevine_broadcast_queue_depth ${core.broadcastQueueDepth}\n`);
        // Loopback: every direct ack well inside the 200 ms probe timeout of the local profile.
        expect(core.probeRttMs.sumMs / core.probeRttMs.count).toBeLessThan(200);
        const probes = core.probeRttMs.count;
        await until(() => m.stats().core.probeRttMs.count > probes); // the second scrape replays only what is new
      }
      // The HTTP API of a member given a registry serves that registry.
      const served = await (await fetch(`http://${m.listening('http') as string}/metrics`)).text();
      expect(served).toMatch(/^grapevine_probe_rtt_seconds_count [1-9]\d*$/m);
      expect(served).not.toMatch(/^process_resident_memory_bytes/m);
    } finally {
      await Promise.all([m.close(), n.close()]);
    }
  });

  test('DeregisterCriticalServiceAfter removes an instance critical that long; blocked queries past the cap get 429', async () => {
    const body = { Name: 'flaky', ID: 'flaky-1', Port: 1, Check: { TTL: '30s', DeregisterCriticalServiceAfter: '1s' } };
    expect((await call('PUT', '/v1/agent/service/register', body)).status).toBe(200);
    await until(() => b.lookup('flaky').length === 1);
    await until(() => b.lookup('flaky').length === 0 && a.lookup('flaky').length === 0, 10_000); // a TTL check starts critical
    const capped = await Grapevine.start({ name: 'capped', bind: '127.0.0.1:0', http: { bind: '127.0.0.1:0', blockingQueriesMax: 2 } });
    const at = `http://${capped.listening('http') as string}`;
    const controller = new AbortController();
    try {
      const index = (await fetch(`${at}/v1/catalog/services`)).headers.get('x-consul-index') as string;
      const held = [1, 2].map(() => fetch(`${at}/v1/catalog/services?index=${index}&wait=30s`, { signal: controller.signal }).catch(() => undefined));
      await new Promise((r) => setTimeout(r, 200));
      const third = await fetch(`${at}/v1/catalog/services?index=${index}&wait=30s`);
      expect(third.status).toBe(429);
      expect((await fetch(`${at}/v1/catalog/services`)).status).toBe(200); // a plain read still works
      controller.abort();
      await Promise.all(held);
    } finally {
      await capped.close();
    }
  });

  test('?filter= narrows catalog, health and agent answers with Consul\'s expressions; a bad one is a 400 naming what is wrong', async () => {
    await b.register({ name: 'flt', id: 'flt-1', port: 1, tags: ['blue'], meta: { version: '1' } });
    await b.register({ name: 'flt', id: 'flt-2', port: 2, tags: ['green'], meta: { version: '2' } });
    await a.register({ name: 'flt', id: 'flt-3', port: 3, meta: { version: '1' }, health: 'critical' });
    await until(() => a.lookup('flt').length === 3);
    const ids = async (path: string): Promise<string[]> => {
      const r = await call('GET', path);
      expect(r.status, r.text).toBe(200);
      return (r.json as Record<string, unknown>[]).map((e) => String(e.CheckID ?? e.ServiceID ?? (e.Service as { ID: string } | undefined)?.ID)).sort();
    };
    const q = encodeURIComponent;
    expect(await ids(`/v1/catalog/service/flt?filter=${q('ServiceMeta.version == "1"')}`)).toEqual(['flt-1', 'flt-3']);
    expect(await ids(`/v1/catalog/service/flt?filter=${q('"blue" in ServiceTags or ServicePort == 2')}`)).toEqual(['flt-1', 'flt-2']);
    expect(await ids(`/v1/health/service/flt?filter=${q('Service.Meta.version == "1" and Node.Node == "b"')}`)).toEqual(['flt-1']);
    expect(await ids(`/v1/health/service/flt?filter=${q('Checks.Status == critical')}`)).toEqual(['flt-3']);
    expect(await ids(`/v1/health/checks/flt?filter=${q('Status != passing')}`)).toEqual(['service:flt-3']);
    const agent = await call('GET', `/v1/agent/services?filter=${q('Service == flt and Meta.version matches "^1$"')}`);
    expect(Object.keys(agent.json as object)).toEqual(['flt-3']);
    for (const bad of ['ServiceMeta.version ==', 'NoSuchField == 1', 'ServiceName matches "(?<=a)b"']) {
      const r = await call('GET', `/v1/catalog/service/flt?filter=${q(bad)}`);
      expect(r.status, bad).toBe(400);
      expect(r.text, bad).toContain('Failed to create boolean expression evaluator');
      expect(r.index, bad).toMatch(/^\d+$/);
    }
  });

  test('Consul\'s headers on every answer, errors included; consistency modes answered locally and said so; one datacenter', async () => {
    const res = async (path: string): Promise<Response> => fetch(`http://${api}${path}`);
    for (const path of ['/v1/catalog/services', '/v1/catalog/services?consistent', '/v1/catalog/services?stale', '/v1/agent/service/nope', '/v1/no/such/endpoint', '/v1/kv/missing']) {
      const r = await res(path);
      await r.text();
      expect(r.headers.get('x-consul-index'), path).toMatch(/^[1-9]\d*$/);
      expect([r.headers.get('x-consul-knownleader'), r.headers.get('x-consul-lastcontact'), r.headers.get('x-consul-effective-consistency')], path).toEqual(['true', '0', 'stale']);
    }
    const cached = await res('/v1/catalog/services?cached');
    expect([cached.headers.get('x-cache'), cached.headers.get('age')]).toEqual(['HIT', '0']);
    expect((await res('/v1/agent/service/nope')).status).toBe(404);
    expect((await res('/v1/kv/missing')).status).toBe(404);
    expect((await res('/v1/coordinate/nodes')).status).toBe(501);
    const otherDc = await res('/v1/catalog/services?dc=dc2');
    expect([otherDc.status, (await otherDc.text()).trim()]).toEqual([500, 'No path to datacenter']);
    expect((await res('/v1/catalog/services?dc=dc1')).status).toBe(200);
    expect((await res('/v1/health/service/x?ns=team')).status).toBe(400);
    // Where a browser lands: the status page.
    const root = await fetch(`http://${api}/`, { redirect: 'manual' });
    expect([root.status, root.headers.get('location')]).toEqual([302, '/ui/']);
  });
});
