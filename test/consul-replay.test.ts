/**
 * The official Go client (consul/api v1.31.0) and Prometheus' Consul discovery cannot be built
 * here, so their exact requests (test/fixtures, read from their source) are replayed against three
 * members on 127.0.0.1, and every answer is checked the way those programs read it: the status
 * they accept, the Go types they decode into (encoding/json's rules), the headers parseQueryMeta
 * reads, and what the calls mean (a TTL update shows, maintenance takes an instance out, a
 * blocking watch wakes when an instance leaves).
 */
import { createServer, request as httpRequest, type Server } from 'node:http';
import { createServer as createTcp } from 'node:net';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { Grapevine } from '../src/index.js';
import { consulGoClientCalls, type GoRequest, goTarget, type ReplayedCall } from './fixtures/consul-go-client.js';
import { checkGoDecodes, goShapes, ptrTo, sliceOf } from './fixtures/go-decode.js';
import { prometheusConsulCalls, prometheusTargetLabels } from './fixtures/prometheus-consul-sd.js';
import { until } from './until.js';

interface Answer { status: number; headers: Record<string, string | string[] | undefined>; text: string; json: unknown }

/** Sends `r` as the Go client would (its headers, its body bytes), with `edit` applied to the body. */
function send(api: string, r: GoRequest, edit: (body: string) => string = (b) => b): Promise<Answer> {
  const [host, port] = [api.slice(0, api.lastIndexOf(':')), Number(api.slice(api.lastIndexOf(':') + 1))];
  const body = r.body === undefined ? undefined : edit(r.body);
  const headers: Record<string, string> = { ...r.headers, ...(body !== undefined ? { 'Content-Length': String(Buffer.byteLength(body)) } : {}) };
  // Go's client would gunzip; our server never compresses, so ask for plain bytes.
  delete headers['Accept-Encoding'];
  return new Promise((resolve, reject) => {
    const req = httpRequest({ host, port, method: r.method, path: goTarget(r), headers }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => {
        const text = Buffer.concat(chunks).toString('utf8');
        let json: unknown;
        try {
          json = text === '' ? undefined : JSON.parse(text);
        } catch {
          json = undefined;
        }
        resolve({ status: res.statusCode ?? 0, headers: res.headers, text, json });
      });
    });
    req.on('error', reject);
    req.end(body);
  });
}

/** What parseQueryMeta needs: X-Consul-Index a uint64 (above 0, or Prometheus never updates), LastContact a uint, KnownLeader "true". */
function expectQueryMeta(a: Answer, what: string): void {
  expect(a.headers['x-consul-index'], what).toMatch(/^[1-9]\d*$/);
  expect(a.headers['x-consul-lastcontact'], what).toMatch(/^\d+$/);
  expect(a.headers['x-consul-knownleader'], what).toBe('true');
}

/** Replays `call` and checks the answer as the Go client reads it; returns it for further checks. */
async function replay(api: string, call: ReplayedCall, edit?: (body: string) => string): Promise<Answer> {
  const a = await send(api, call.request, edit);
  const what = `${call.call}: ${a.status} ${a.text.slice(0, 200)}`;
  expect(call.response.ok, what).toContain(a.status);
  // Our promise beyond the client's: every answer carries the index, errors included.
  expect(a.headers['x-consul-index'], what).toMatch(/^\d+$/);
  if (call.response.decodes !== null && a.status !== 404) {
    expect(a.json, what).not.toBeUndefined();
    expect(checkGoDecodes(a.json, call.response.decodes), what).toEqual([]);
  }
  if (call.response.queryMeta) expectQueryMeta(a, what);
  return a;
}

function goCall(call: string): ReplayedCall {
  const c = consulGoClientCalls.find((x) => x.call.startsWith(call));
  if (c === undefined) throw new Error(`no replayed call ${call}`);
  return c;
}

const members: Grapevine[] = [];
let a: Grapevine;
let b: Grapevine;
let c: Grapevine;
let [apiA, apiB] = ['', ''];
let health: Server;
let healthUrl = '';
let closedPort = 0;

describe('replayed requests of the Go client and of Prometheus', () => {
  beforeAll(async () => {
    health = createServer((_req, res) => res.end('ok'));
    await new Promise<void>((r) => health.listen(0, '127.0.0.1', r));
    healthUrl = `http://127.0.0.1:${(health.address() as { port: number }).port}/health`;
    const probe = createTcp();
    await new Promise<void>((r) => probe.listen(0, '127.0.0.1', r));
    closedPort = (probe.address() as { port: number }).port;
    await new Promise((r) => probe.close(r));
    a = await Grapevine.start({ name: 'a', bind: '127.0.0.1:0', profile: 'local', http: '127.0.0.1:0' });
    b = await Grapevine.start({ name: 'b', bind: '127.0.0.1:0', profile: 'local', http: '127.0.0.1:0', seeds: [a.address] });
    c = await Grapevine.start({ name: 'c', bind: '127.0.0.1:0', profile: 'local', seeds: [a.address] });
    members.push(a, b, c);
    [apiA, apiB] = [a.listening('http') as string, b.listening('http') as string];
    await until(() => members.every((m) => m.members().length === 3));
  }, 30_000);

  afterAll(async () => {
    await Promise.all(members.map((m) => m.close()));
    health?.close();
  });

  test('the Go client: registrations, TTL updates, checks, maintenance, agent health, catalog and health reads', async () => {
    // Addresses in the replayed bodies are rewritten to loopback: tests send traffic nowhere else.
    await replay(apiA, goCall('client.Agent().ServiceRegister(&api.AgentServiceRegistration{ID: "web-1"'));
    await replay(apiA, goCall('client.Agent().ServiceRegister(&api.AgentServiceRegistration{ID: "api-1"'), (s) => s.replace('http://127.0.0.1:9090/health', healthUrl));
    await replay(apiA, goCall('client.Agent().ServiceRegister(&api.AgentServiceRegistration{ID: "db-1"'), (s) => s.replace('10.0.0.7:5432', `127.0.0.1:${closedPort}`));
    await until(() => b.lookup('api').length === 1 && b.lookup('web').length === 1 && b.lookup('db').length === 1);

    const services = await replay(apiA, goCall('client.Agent().Services()'));
    expect(Object.keys(services.json as object).sort()).toEqual(['api-1', 'db-1', 'web-1']);
    const web = await replay(apiA, goCall('client.Agent().Service("web-1"'));
    expect(web.json).toMatchObject({ ID: 'web-1', Service: 'web', Tags: ['v1', 'primary'], Port: 8080, Address: '10.0.0.5', Meta: { version: '1.2.0' } });
    expect(web.headers['x-consul-contenthash']).toBe((web.json as { ContentHash: string }).ContentHash);
    const db = (services.json as Record<string, { TaggedAddresses: unknown; Weights: unknown }>)['db-1'];
    expect(db?.TaggedAddresses).toEqual({ lan: { Address: '10.0.0.7', Port: 5432 } });
    expect((services.json as Record<string, { Weights: unknown }>)['api-1']?.Weights).toEqual({ Passing: 10, Warning: 1 });

    // A TTL check starts critical: the agent's health endpoint says 503 until it passes.
    const byName = goCall('client.Agent().AgentHealthServiceByName("web")');
    expect((await replay(apiA, byName)).status).toBe(503);
    await replay(apiA, goCall('client.Agent().UpdateTTL('));
    const healthy = await replay(apiA, byName);
    expect(healthy.status).toBe(200);
    expect(healthy.json).toMatchObject([{ AggregatedStatus: 'passing', Service: { ID: 'web-1' }, Checks: [{ CheckID: 'service:web-1', Status: 'passing', Output: 'all good', Type: 'ttl' }] }]);
    // The check, its name, type and output travel: another member answers the same.
    await until(() => b.lookup('web')[0]?.health === 'passing');
    const onB = await replay(apiB, goCall('client.Health().Checks("web"'));
    expect(onB.json).toEqual([expect.objectContaining({ Node: 'a', CheckID: 'service:web-1', Name: "Service 'web' check", Type: 'ttl', Status: 'passing', Output: 'all good' })]);

    await replay(apiA, goCall('client.Agent().WarnTTL('));
    expect((await replay(apiA, byName)).status).toBe(429);
    await replay(apiA, goCall('client.Agent().FailTTL('));
    const failed = await replay(apiA, goCall('client.Agent().AgentHealthServiceByID("web-1")'));
    expect(failed.status).toBe(503);
    expect(failed.json).toMatchObject({ AggregatedStatus: 'critical', Checks: [{ Output: 'disk full' }] });
    await replay(apiA, goCall('client.Agent().PassTTL('));

    // A standalone check on web-1 counts against it, everywhere; deregistered, it is gone.
    await replay(apiA, goCall('client.Agent().CheckRegister('));
    await until(() => b.lookup('web')[0]?.checks.some((x) => x.id === 'web-1-mem') === true);
    await replay(apiA, goCall('client.Agent().CheckDeregister('));
    await until(() => b.lookup('web')[0]?.checks.every((x) => x.id !== 'web-1-mem') === true);

    // Maintenance: out of every member's healthy answers, with the reason, then back.
    const passingWeb = goCall('client.Health().Service("web", "v1", true');
    await replay(apiA, goCall('client.Agent().EnableServiceMaintenance('));
    await until(async () => ((await replay(apiB, passingWeb)).json as unknown[]).length === 0);
    const maint = await replay(apiA, goCall('client.Agent().AgentHealthServiceByID("web-1")'));
    expect(maint.status).toBe(503);
    expect(maint.json).toMatchObject({ AggregatedStatus: 'maintenance', Checks: expect.arrayContaining([expect.objectContaining({ CheckID: '_service_maintenance:web-1', Notes: 'deploy' })]) });
    await replay(apiA, goCall('client.Agent().DisableServiceMaintenance('));
    await until(async () => ((await replay(apiB, passingWeb)).json as unknown[]).length === 1);
    await replay(apiA, goCall('client.Agent().EnableNodeMaintenance('));
    await until(() => b.lookup('db')[0]?.health === 'critical' && b.lookup('web')[0]?.health === 'critical');
    const nodeChecks = await replay(apiB, goCall('client.Health().Node("a"'));
    expect(nodeChecks.json).toEqual(expect.arrayContaining([expect.objectContaining({ CheckID: '_node_maintenance', ServiceID: '', Notes: 'kernel upgrade', Status: 'critical' })]));
    await replay(apiA, goCall('client.Agent().DisableNodeMaintenance('));
    await until(() => b.lookup('web')[0]?.health === 'passing');

    // Reads, on the member that registered and on another.
    for (const api of [apiA, apiB]) {
      expect((await replay(api, goCall('client.Catalog().Datacenters()'))).json).toEqual(['dc1']);
      expect(((await replay(api, goCall('client.Catalog().Nodes(nil)'))).json as { Node: string }[]).map((n) => n.Node).sort()).toEqual(['a', 'b', 'c']);
      expect(Object.keys((await replay(api, goCall('client.Catalog().Services(nil)'))).json as object).sort()).toEqual(['api', 'db', 'web']);
      expect(((await replay(api, goCall('client.Catalog().Service("web", "v1"'))).json as { ServiceID: string }[]).map((s) => s.ServiceID)).toEqual(['web-1']);
      expect(await replay(api, goCall('client.Catalog().Node("a"'))).toMatchObject({ json: { Node: { Node: 'a' }, Services: { 'web-1': { Service: 'web' } } } });
      const list = await replay(api, goCall('client.Catalog().NodeServiceList("a"'));
      expect((list.json as { Services: { ID: string }[] }).Services.map((s) => s.ID).sort()).toEqual(['api-1', 'db-1', 'web-1']);
      const critical = await replay(api, goCall('client.Health().State("critical"'));
      expect((critical.json as { CheckID: string }[]).map((x) => x.CheckID)).toContain('db-1-tcp');
      await replay(api, goCall('client.Agent().Members(false)'));
      await replay(api, goCall('client.Agent().Self()'));
      await replay(api, goCall('client.Agent().Checks()'));
      await replay(api, goCall('client.Status().Peers()'));
    }
    // The output of an HTTP check is Consul's: the request, the status line, the body.
    await until(() => b.lookup('api')[0]?.health === 'passing');
    const apiChecks = await replay(apiB, goCall('client.Health().Checks("web"'), undefined);
    expect(apiChecks.status).toBe(200);
    expect(b.lookup('api')[0]?.checks[0]).toMatchObject({ name: 'api health', type: 'http', status: 'passing', output: `HTTP GET ${healthUrl}: 200 OK Output: ok`, intervalMs: 10_000, timeoutMs: 2_000 });
    // One leader for everyone who asks, whichever member they ask.
    const leaders = await Promise.all([apiA, apiB].map(async (api) => (await replay(api, goCall('client.Status().Leader()'))).json));
    expect(leaders[0]).toBe(leaders[1]);
    expect(leaders[0]).toBe(a.address);

    // A blocking read answers with the index to wait on next.
    const blocking = goCall('client.Catalog().Services(&api.QueryOptions{WaitIndex: 42');
    const answered = await replay(apiB, blocking);
    expect(Number(answered.headers['x-consul-index'])).toBeGreaterThan(0);

    await replay(apiA, goCall('client.Agent().ServiceDeregister("web-1")'));
    await until(() => b.lookup('web').length === 0);
  }, 60_000);

  test('the Go client\'s KV and Event calls, replayed as it sends them, decode into its types; a put on one member is read on another', async () => {
    await replay(apiA, goCall('client.KV().Put('));
    const got = await replay(apiA, goCall('client.KV().Get('));
    expect((got.json as { Key: string; Flags: number; Value: string }[])[0]).toMatchObject({ Key: 'config/web/limits', Flags: 42, Value: Buffer.from('{"rps":100}').toString('base64') });
    await until(async () => (await send(apiB, goCall('client.KV().Get(').request)).status === 200);
    const listed = await replay(apiB, goCall('client.KV().List('));
    expect(listed.status, listed.text).toBe(200);
    expect((listed.json as unknown[]).length).toBe(1);
    const keys = await replay(apiA, goCall('client.KV().Keys('));
    expect([keys.status, keys.json], keys.text).toEqual([200, ['config/web/']]);
    await replay(apiA, goCall('client.KV().Delete('));
    expect((await replay(apiA, goCall('client.KV().Get('))).status).toBe(404);
    const fired = await replay(apiA, goCall('client.Event().Fire('));
    expect(fired.json).toMatchObject({ Name: 'deploy', Payload: Buffer.from('v2').toString('base64'), ServiceFilter: 'web' });
    await replay(apiA, goCall('client.Event().List('));
  });

  test('what is not served answers 501 with the reason, never a 404 a client would take for "not found"', async () => {
    for (const prefix of ['client.Coordinate()']) {
      for (const call of consulGoClientCalls.filter((x) => x.call.startsWith(prefix))) {
        const answer = await send(apiA, call.request);
        expect(answer.status, call.call).toBe(501);
        expect(answer.text, call.call).toMatch(/not served|not supported/);
        expect(answer.headers['x-consul-index'], call.call).toMatch(/^\d+$/);
      }
    }
  });

  test('external services: registered in the catalog for a node that runs no member, checked, updated as ESM does, gone with their member', async () => {
    await replay(apiA, goCall('client.Catalog().Register('));
    const getOnB = async (path: string): Promise<Answer> => send(apiB, { ...goCall('client.Catalog().Nodes(nil)').request, path });
    const externalOnB = async (): Promise<Record<string, unknown>[]> => (await getOnB('/v1/catalog/service/ext-db')).json as Record<string, unknown>[];
    await until(async () => (await externalOnB()).length === 1);
    expect((await externalOnB())[0]).toMatchObject({ Node: 'ext-node', Address: '192.0.2.10', ServiceID: 'ext-db', NodeMeta: { 'external-node': 'true' } });
    const nodes = (await replay(apiB, goCall('client.Catalog().Nodes(nil)'))).json as { Node: string }[];
    expect(nodes.map((n) => n.Node)).toContain('ext-node');
    // Its health is its own check's: no serf check, no member's node checks.
    const health = await getOnB('/v1/health/service/ext-db');
    expect(checkGoDecodes(health.json, sliceOf(ptrTo(goShapes.ServiceEntry)))).toEqual([]);
    expect(health.json).toMatchObject([{ Node: { Node: 'ext-node', Address: '192.0.2.10' }, Service: { ID: 'ext-db', Address: '192.0.2.10' }, Checks: [{ CheckID: 'service:ext-db', Name: 'ext-db alive', Status: 'passing' }] }]);
    expect(b.lookup('ext-db')[0]).toMatchObject({ node: 'a', address: '192.0.2.10', port: 5432, external: { node: 'ext-node' } });

    // ESM's update: the check alone, its status stated; it travels with its output.
    const update = { Node: 'ext-node', SkipNodeUpdate: true, Check: { Node: 'ext-node', CheckID: 'service:ext-db', ServiceID: 'ext-db', Status: 'critical', Output: 'connection refused' } };
    expect((await send(apiA, { ...goCall('client.Catalog().Register(').request, body: JSON.stringify(update) })).status).toBe(200);
    await until(() => b.lookup('ext-db')[0]?.health === 'critical');
    expect(b.lookup('ext-db')[0]?.checks).toEqual([expect.objectContaining({ id: 'service:ext-db', status: 'critical', output: 'connection refused' })]);

    // A check given how to run it is run by the member that registered it.
    const checked = {
      Node: 'web-node', Address: '127.0.0.1', Service: { ID: 'ext-web', Service: 'ext-web', Port: 1 },
      Check: { Node: 'web-node', CheckID: 'ext-web-http', Name: 'ext web', ServiceID: 'ext-web', Definition: { HTTP: healthUrl, Interval: '1s', Timeout: '1s' } },
    };
    expect((await send(apiA, { ...goCall('client.Catalog().Register(').request, body: JSON.stringify(checked) })).status).toBe(200);
    await until(() => b.lookup('ext-web')[0]?.health === 'passing');
    expect(b.lookup('ext-web')[0]?.checks[0]).toMatchObject({ type: 'http', output: `HTTP GET ${healthUrl}: 200 OK Output: ok` });

    // Members are not external nodes; another member's external service is not ours to change.
    const asMember = await send(apiA, { ...goCall('client.Catalog().Register(').request, body: JSON.stringify({ Node: 'b', Address: '127.0.0.1', Service: { Service: 'x', Port: 1 } }) });
    expect(asMember).toMatchObject({ status: 400, text: expect.stringContaining('is a member') });
    const d = await Grapevine.start({ name: 'd', bind: '127.0.0.1:0', profile: 'local', seeds: [a.address] });
    members.push(d);
    await d.register({ name: 'ext-cache', port: 6379, external: { node: 'cache-node', address: '127.0.0.2' } });
    await until(() => a.lookup('ext-cache').length === 1 && b.lookup('ext-cache').length === 1);
    const foreign = await send(apiA, { ...goCall('client.Catalog().Deregister(').request, body: JSON.stringify({ Node: 'cache-node', ServiceID: 'ext-cache' }) });
    expect(foreign).toMatchObject({ status: 400, text: expect.stringContaining('registered by member d') });
    // The member that spreads an external service is its only keeper: when it dies, the service is gone.
    await d.close();
    await until(() => b.lookup('ext-cache').length === 0, 20_000);
    expect(((await getOnB('/v1/catalog/nodes')).json as { Node: string }[]).map((n) => n.Node)).not.toContain('cache-node');

    await replay(apiA, goCall('client.Catalog().Deregister('));
    await until(async () => (await externalOnB()).length === 0);
    await send(apiA, { ...goCall('client.Catalog().Deregister(').request, body: JSON.stringify({ Node: 'web-node' }) });
    await until(() => b.lookup('ext-web').length === 0);
  }, 40_000);

  test('Prometheus discovery: its watch and health reads, its labels, and a deregistered or crashed instance leaving within one blocking round', async () => {
    await a.register({ name: 'web', id: 'web-a', port: 8080, tags: ['v1', 'primary'], meta: { version: '2' } });
    await c.register({ name: 'web', id: 'web-c', port: 8081, tags: ['v1'] });
    await until(() => b.lookup('web').length === 2);
    const [self, first, , withOptions, healthFirst, healthWithOptions] = prometheusConsulCalls as unknown as [ReplayedCall, ReplayedCall, ReplayedCall, ReplayedCall, ReplayedCall, ReplayedCall];
    expect(((await replay(apiB, self)).json as { Config: { Datacenter: string } }).Config.Datacenter).toBe('dc1');
    const watch = await replay(apiB, first);
    expect(watch.json).toMatchObject({ web: expect.arrayContaining(['v1', 'primary']) });
    // Prometheus' fullest options include a namespace and a partition: Consul OSS refuses those, so do we.
    const refused = await send(apiB, withOptions.request);
    expect(refused.status).toBe(400);
    expect(refused.text).toContain('Consul Enterprise feature');
    expect((await send(apiB, healthWithOptions.request)).status).toBe(400);

    const entries = (await replay(apiB, healthFirst)).json as Record<string, Record<string, unknown>>[];
    expect(entries.map((e) => (e.Service as { ID: string }).ID).sort()).toEqual(['web-a', 'web-c']);
    const labels = targetLabels(entries.find((e) => (e.Service as { ID: string }).ID === 'web-a') as Record<string, Record<string, unknown>>);
    expect(labels).toMatchObject({
      __address__: `127.0.0.1:8080`, __meta_consul_node: 'a', __meta_consul_address: '127.0.0.1', __meta_consul_service_id: 'web-a',
      __meta_consul_service_port: '8080', __meta_consul_tags: ',v1,primary,', __meta_consul_service_metadata_version: '2',
      __meta_consul_tagged_address_lan: '127.0.0.1', __meta_consul_health: 'passing',
    });
    // Every label source the fixture names exists in our answer (but Enterprise's, which Consul OSS leaves out too).
    for (const l of prometheusTargetLabels) if (l.path !== undefined && !/Namespace|Partition/.test(l.from)) expect(l.path.reduce<unknown>((o, k) => (o as Record<string, unknown>)?.[k], entries[0]), l.label).not.toBeUndefined();

    // The watch as Prometheus runs it: block on the last index, again after every answer, until
    // the instance is gone. A suspicion changes no answer, so it wakes no watch: a crash is one
    // round too, ending when the member is declared dead.
    const watchUntilGone = async (change: () => Promise<unknown>, gone: string): Promise<{ ms: number; rounds: number }> => {
      let index = (await send(apiB, healthFirst.request)).headers['x-consul-index'] as string;
      const started = Date.now();
      const changing = change();
      for (let rounds = 1; rounds <= 10; rounds++) {
        const answer = await send(apiB, { ...healthFirst.request, query: [['index', index], ['stale', ''], ['wait', '120000ms']] });
        expect(Number(answer.headers['x-consul-index'])).toBeGreaterThan(Number(index));
        index = answer.headers['x-consul-index'] as string;
        if (!(answer.json as { Service: { ID: string } }[]).some((e) => e.Service.ID === gone)) {
          await changing;
          return { ms: Date.now() - started, rounds };
        }
      }
      throw new Error(`${gone} still listed after 10 blocking rounds`);
    };
    const deregistered = await watchUntilGone(() => a.deregister('web-a'), 'web-a');
    expect(deregistered.rounds).toBe(1);
    const crashed = await watchUntilGone(() => c.close(), 'web-c');
    expect(crashed.rounds).toBe(1);
    console.log(`Prometheus' blocking health watch: a deregistered instance gone ${deregistered.ms} ms after, a crashed member's `
      + `${crashed.ms} ms after the crash (the local profile's detection), one blocking round each`);
  }, 60_000);

  test('leave, as the Go client sends it, ends the member', async () => {
    await replay(apiA, goCall('client.Agent().Leave()'));
    await until(() => b.member('a')?.state === 'left');
  });
});

/** The labels Prometheus builds from one health entry (discovery/consul/consul.go). */
function targetLabels(e: Record<string, Record<string, unknown>>): Record<string, string> {
  const node = e.Node as { Node: string; Address: string; Meta: Record<string, string>; TaggedAddresses: Record<string, string> };
  const service = e.Service as { ID: string; Address: string; Port: number; Tags: string[]; Meta: Record<string, string> };
  const checks = e.Checks as unknown as { CheckID: string; Status: string }[];
  const out: Record<string, string> = {
    __address__: `${service.Address === '' ? node.Address : service.Address}:${service.Port}`,
    __meta_consul_node: node.Node, __meta_consul_address: node.Address, __meta_consul_service_id: service.ID,
    __meta_consul_service_address: service.Address, __meta_consul_service_port: String(service.Port),
    __meta_consul_tags: `,${service.Tags.join(',')},`,
    __meta_consul_health: checks.some((x) => x.CheckID === '_node_maintenance' || x.CheckID.startsWith('_service_maintenance:')) ? 'maintenance'
      : checks.some((x) => x.Status === 'critical') ? 'critical' : checks.some((x) => x.Status === 'warning') ? 'warning' : 'passing',
  };
  const clean = (k: string): string => k.replace(/[^a-zA-Z0-9_]/g, '_');
  for (const [k, v] of Object.entries(node.Meta)) out[`__meta_consul_metadata_${clean(k)}`] = v;
  for (const [k, v] of Object.entries(service.Meta)) out[`__meta_consul_service_metadata_${clean(k)}`] = v;
  for (const [k, v] of Object.entries(node.TaggedAddresses)) out[`__meta_consul_tagged_address_${clean(k)}`] = v;
  return out;
}
