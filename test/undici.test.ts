/**
 * The fetch/undici dispatcher against real HTTP servers on 127.0.0.1 registered from several
 * members (one a real process, SIGKILLed mid-load). Waits and loads are bounded.
 */
import { createServer, type Server } from 'node:http';
import { type Dispatcher, fetch as undiciFetch, request } from 'undici';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { AgentProcess } from '../src/cli/processes.js';
import { createDispatcher, NoInstanceError } from '../src/client/undici.js';
import { Grapevine, type ServiceHandle } from '../src/index.js';
import { until } from './until.js';

let a: Grapevine;
let b: Grapevine;
const agents: AgentProcess[] = [];
const servers: Server[] = [];

interface Web { server: Server; port: number; hits: number; connections: number }

async function web(name: string, status = 200): Promise<Web> {
  const w: Web = { server: createServer(), port: 0, hits: 0, connections: 0 };
  w.server.on('request', (_req, res) => {
    w.hits++;
    res.statusCode = status;
    res.end(name);
  });
  w.server.on('connection', () => void w.connections++);
  await new Promise<void>((r) => w.server.listen(0, '127.0.0.1', r));
  w.port = (w.server.address() as { port: number }).port;
  servers.push(w.server);
  return w;
}

function stop(w: Web): void {
  w.server.close();
  w.server.closeAllConnections();
}

describe('fetch through the grapevine dispatcher', () => {
  beforeAll(async () => {
    a = await Grapevine.start({ name: 'lb-a', bind: '127.0.0.1:0', profile: 'local' });
    b = await Grapevine.start({ name: 'lb-b', bind: '127.0.0.1:0', profile: 'local', seeds: [a.address] });
  }, 20_000);

  afterAll(async () => {
    await Promise.all(agents.map((x) => x.stop()));
    for (const s of servers) s.close();
    await Promise.all([a?.close(), b?.close()]);
  });

  test('under steady load, a SIGKILLed instance and one whose check turns critical fail no idempotent request', async () => {
    const [s1, s2, s3] = [await web('one'), await web('two'), await web('three')];
    const victim = new AgentProcess({ name: 'lb-victim', bind: '127.0.0.1:0', seeds: [a.address], profile: 'local', services: [{ name: 'billing', port: s1.port }] });
    agents.push(victim);
    await victim.ready();
    const ttl: ServiceHandle = await b.register({ name: 'billing', id: 'two', port: s2.port, check: { ttlMs: 30_000 } });
    ttl.pass();
    await b.register({ name: 'billing', id: 'three', port: s3.port });
    await until(() => a.lookup('billing', { healthy: true }).length === 3, 20_000);
    const dispatcher = createDispatcher(a);
    const results: string[] = [];
    const failures: string[] = [];
    let running = true;
    const worker = async (): Promise<void> => {
      for (let i = 0; i < 5_000 && running; i++) {
        try {
          const res = await fetch('http://billing/charge', { dispatcher } as RequestInit);
          results.push(await res.text());
        } catch (e) {
          failures.push(String((e as { cause?: unknown }).cause ?? e));
        }
        // Steady, not saturating: the members run in this process too, and must keep probing.
        await new Promise((r) => setTimeout(r, 2));
      }
    };
    const load = Promise.all(Array.from({ length: 8 }, worker));
    await new Promise((r) => setTimeout(r, 500));
    victim.signal('SIGKILL');
    stop(s1); // the process is gone, and so is what listened for it
    await new Promise((r) => setTimeout(r, 1_000));
    ttl.fail();
    stop(s2);
    await until(() => a.lookup('billing', { healthy: true }).length === 1, 40_000);
    await new Promise((r) => setTimeout(r, 500));
    running = false;
    await load;
    await dispatcher.close();
    console.log(`undici dispatcher under load: ${results.length} requests, ${failures.length} failed; one/two/three answered ${['one', 'two', 'three'].map((n) => results.filter((r) => r === n).length).join('/')}`);
    expect(failures).toEqual([]);
    expect(results.length).toBeGreaterThan(100);
    expect(results.slice(-20).every((r) => r === 'three')).toBe(true);
  }, 90_000);

  test('a refused connection is always tried elsewhere; retries of requests that reached an instance keep to the budget', async () => {
    const closedPort = async (): Promise<number> => {
      const w = await web('gone');
      stop(w);
      await new Promise((r) => w.server.once('close', r));
      return w.port;
    };
    const ok = await web('ok');
    await b.register({ name: 'refusing', id: 'r1', port: await closedPort() });
    await b.register({ name: 'refusing', id: 'r2', port: await closedPort() });
    await b.register({ name: 'refusing', id: 'ok', port: ok.port });
    // Every request reaches one of these, which drops the connection before answering.
    let reached = 0;
    for (const id of ['x1', 'x2', 'x3']) {
      const w = await web(id);
      w.server.removeAllListeners('request');
      w.server.on('request', (req) => {
        reached++;
        req.socket.destroy();
      });
      await b.register({ name: 'resetting', id, port: w.port });
    }
    await until(() => a.lookup('refusing').length === 3 && a.lookup('resetting').length === 3);
    const dispatcher = createDispatcher(a);
    const requests = 200;
    const answers: string[] = [];
    for (let i = 0; i < requests; i++) answers.push(await (await fetch('http://refusing/', { dispatcher } as RequestInit)).text());
    // Half the requests go to a refusing instance first (one of the two may be ejected), far past a budget of 10 + 0.2 a request.
    expect(answers.filter((x) => x === 'ok')).toHaveLength(requests);
    let failed = 0;
    for (let i = 0; i < requests; i++) await fetch('http://resetting/', { dispatcher } as RequestInit).catch(() => void failed++);
    expect(failed).toBe(requests);
    // Without the budget every request would reach all three (600); with it, one each plus 10 + 0.2 per request made.
    expect(reached).toBeGreaterThanOrEqual(requests);
    expect(reached).toBeLessThanOrEqual(requests + 10 + 0.2 * (2 * requests));
    await dispatcher.close();
  });

  test('an instance gone from the catalog gets no new connection, even if something still listens there', async () => {
    const zombie = await web('zombie');
    const live = await web('live');
    const victim = new AgentProcess({ name: 'lb-zombie', bind: '127.0.0.1:0', seeds: [a.address], profile: 'local', services: [{ name: 'ledger', port: zombie.port }] });
    agents.push(victim);
    await victim.ready();
    await b.register({ name: 'ledger', id: 'live', port: live.port });
    await until(() => a.lookup('ledger').length === 2, 20_000);
    const dispatcher = createDispatcher(a, { strategy: 'round-robin' });
    for (let i = 0; i < 10; i++) await (await fetch('http://ledger/', { dispatcher } as RequestInit)).text();
    expect(zombie.hits).toBeGreaterThan(0);
    victim.signal('SIGKILL');
    await until(() => a.lookup('ledger').length === 1, 20_000);
    const connections = zombie.connections;
    const hits = zombie.hits;
    for (let i = 0; i < 30; i++) expect(await (await fetch('http://ledger/', { dispatcher } as RequestInit)).text()).toBe('live');
    expect([zombie.connections, zombie.hits]).toEqual([connections, hits]);
    await dispatcher.close();
  }, 60_000);

  test('an instance answering 500 is ejected, then readmitted; never more than the set share at once', async () => {
    const bad = await web('bad', 500);
    const good = await web('good');
    await b.register({ name: 'flaky', id: 'bad', port: bad.port });
    await b.register({ name: 'flaky', id: 'good', port: good.port });
    await until(() => a.lookup('flaky').length === 2);
    const dispatcher = createDispatcher(a, { strategy: 'round-robin', consecutiveErrors: 3, ejectionMs: 800, maxEjectedShare: 0.5 });
    const statuses: number[] = [];
    for (let i = 0; i < 12; i++) statuses.push((await request('http://flaky/', { dispatcher })).statusCode);
    expect(statuses.filter((s) => s === 500)).toHaveLength(3); // three 5xx in a row (round-robin), then ejected
    const badInstance = a.lookup('flaky').find((i) => i.id === 'bad');
    expect(dispatcher.isEjected(badInstance as never)).toBe(true);
    await new Promise((r) => setTimeout(r, 900));
    const hitsBefore = bad.hits;
    for (let i = 0; i < 6; i++) await (await request('http://flaky/', { dispatcher })).body.text();
    expect(bad.hits).toBeGreaterThan(hitsBefore); // readmitted after its ejection
    // With both answering 500, the share allows one ejection, not two.
    const worse = await web('worse', 500);
    await b.deregister('good');
    await b.register({ name: 'flaky', id: 'worse', port: worse.port });
    await until(() => a.lookup('flaky').map((i) => i.id).sort().join() === 'bad,worse');
    for (let i = 0; i < 20; i++) await (await request('http://flaky/', { dispatcher })).body.text();
    const ejected = a.lookup('flaky').filter((i) => dispatcher.isEjected(i as never));
    expect(ejected.length).toBeLessThanOrEqual(1);
    await dispatcher.close();
  }, 30_000);

  test('unknown services fail with NoInstanceError without DNS; other hosts pass through; tag and domain forms', async () => {
    const plain = await web('plain');
    await b.register({ name: 'tagged', id: 't1', port: plain.port, tags: ['v2'] });
    await until(() => a.lookup('tagged').length === 1);
    const dispatcher = createDispatcher(a);
    const err = await fetch('http://no-such-service/', { dispatcher } as RequestInit).catch((e: { cause?: unknown }) => e.cause);
    expect(err).toBeInstanceOf(NoInstanceError);
    expect(err).toMatchObject({ code: 'grapevine.no-instance' });
    expect(await (await fetch(`http://127.0.0.1:${plain.port}/`, { dispatcher } as RequestInit)).text()).toBe('plain');
    expect(await (await fetch('http://v2.tagged/', { dispatcher } as RequestInit)).text()).toBe('plain');
    expect(await (await fetch('http://tagged.service.grapevine/', { dispatcher } as RequestInit)).text()).toBe('plain');
    expect(await (await fetch('http://v2.tagged.service.grapevine/', { dispatcher } as RequestInit)).text()).toBe('plain');
    const v3 = await fetch('http://v3.tagged/', { dispatcher } as RequestInit).catch((e: { cause?: unknown }) => e.cause);
    expect(v3).toBeInstanceOf(NoInstanceError);
    // undici's own fetch and request, as well as Node's.
    expect(await (await undiciFetch('http://tagged/', { dispatcher })).text()).toBe('plain');
    expect(await (await request('http://tagged/', { dispatcher })).body.text()).toBe('plain');
    const missing = await undiciFetch('http://no-such-service/', { dispatcher }).catch((e: { cause?: unknown }) => e.cause);
    expect(missing).toBeInstanceOf(NoInstanceError);
    // A new-style handler (the style undici 7 interceptors use) sees one start and one end.
    const seen: string[] = [];
    await new Promise<void>((resolve) => {
      const handler: Dispatcher.DispatchHandler = {
        onRequestStart: () => void seen.push('start'),
        onResponseStart: (_c, status) => void seen.push(`status ${status}`),
        onResponseData: () => undefined,
        onResponseEnd: () => {
          seen.push('end');
          resolve();
        },
        onResponseError: (_c, e) => {
          seen.push(`error ${e.message}`);
          resolve();
        },
      };
      dispatcher.dispatch({ origin: 'http://tagged', path: '/', method: 'GET' }, handler);
    });
    expect(seen).toEqual(['start', 'status 200', 'end']);
    await dispatcher.close();
  });

  test('locality: instances in the caller\'s zone are preferred, others used when none is left', async () => {
    const near = await web('near');
    const far = await web('far');
    const c = await Grapevine.start({ name: 'lb-c', bind: '127.0.0.1:0', profile: 'local', seeds: [a.address], meta: { zone: 'us' } });
    try {
      b.setMeta({ zone: 'eu' });
      const nearHandle = await b.register({ name: 'zoned', id: 'near', port: near.port, check: { ttlMs: 30_000 } });
      nearHandle.pass();
      await c.register({ name: 'zoned', id: 'far', port: far.port });
      await until(() => a.lookup('zoned', { healthy: true }).length === 2 && a.member('lb-b')?.meta.zone === 'eu');
      const dispatcher = createDispatcher(a, { zone: 'eu' });
      const answers = new Set<string>();
      for (let i = 0; i < 20; i++) answers.add(await (await fetch('http://zoned/', { dispatcher } as RequestInit)).text());
      expect(answers).toEqual(new Set(['near']));
      nearHandle.fail();
      await until(() => a.lookup('zoned', { healthy: true }).length === 1);
      expect(await (await fetch('http://zoned/', { dispatcher } as RequestInit)).text()).toBe('far');
      await dispatcher.close();
    } finally {
      await c.close();
    }
  });
});
