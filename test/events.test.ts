/**
 * User events (src/events/, src/http/events.ts) on real members on 127.0.0.1: an event reaches
 * every member once however often it is re-gossiped, filters deliver only where they match but
 * every member relays, Lamport times grow (a member that just joined fires at the cluster's
 * time), limits are refused naming them, hostile packets are dropped; Consul's /v1/event
 * endpoints with the `consul` npm package and Debian's python3-consul, including a blocking
 * list woken by an event fired at another member. Every wait is bounded.
 */
import { execFile } from 'node:child_process';
import { createSocket } from 'node:dgram';
import { promisify } from 'node:util';
import Consul from 'consul';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { encodeEvent, type UserEvent as WireEvent } from '../src/events/event.js';
import { encodePacket, EVENT_BYTES_MAX, Grapevine, InvalidOptionError, InvalidStateError, MessageType, OversizedError, type UserEvent } from '../src/index.js';
import { available, runs } from './needs.js';
import { until } from './until.js';

const PYTHON = '/usr/bin/python3';
const hasPythonConsul = available('python3-consul', runs(PYTHON, ['-c', 'import consul']), 'apt-get install -y python3-consul');
/** Gossip reaches everyone in well under a second; a member that missed every copy gets it at its next sync (every 5 s). */
const SPREAD_MS = 20_000;
const KEY = new Uint8Array(32).fill(9);
const text = (b: Uint8Array): string => new TextDecoder().decode(b);
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));
const portOf = (addr: string): number => Number(addr.slice(addr.lastIndexOf(':') + 1));
/** Consul's uuidToUint64, whole (64 bits): what Go's Event().IDToIndex computes. */
const goIndex = (id: string): bigint => {
  const hex = id.replace(/-/g, '');
  return BigInt(`0x${hex.slice(0, 16)}`) ^ BigInt(`0x${hex.slice(16)}`);
};
const eventStats = (m: Grapevine): Record<string, number> => m.stats().interfaces.events as Record<string, number>;

/** Sends one App message on the events channel to `to`, in clear, from a socket of our own. */
async function sendClear(to: Grapevine, payload: Uint8Array): Promise<void> {
  const socket = createSocket('udp4');
  await new Promise<void>((r) => socket.send(encodePacket([{ type: MessageType.App, channel: 2, payload, kind: 0 }]), portOf(to.address), '127.0.0.1', () => r()));
  socket.close();
}

describe('user events across four members (with a keyring)', () => {
  const members: Grapevine[] = [];
  const heard = new Map<string, UserEvent[]>();
  let http = '';

  beforeAll(async () => {
    const common = { bind: '127.0.0.1:0', profile: 'local' as const, keyring: [KEY] };
    members.push(await Grapevine.start({ ...common, name: 'e0', http: '127.0.0.1:0' }));
    for (let i = 1; i < 4; i++) members.push(await Grapevine.start({ ...common, name: `e${i}`, seeds: [members[0]?.address as string], ...(i === 1 ? { http: '127.0.0.1:0' } : {}) }));
    for (const m of members) {
      heard.set(m.name, []);
      m.on('user-event', (e) => heard.get(m.name)?.push(e));
    }
    const [, e1, e2, e3] = members as [Grapevine, Grapevine, Grapevine, Grapevine];
    await e1.register({ name: 'web', id: 'web-1', port: 8001, tags: ['v1'] });
    await e2.register({ name: 'web', id: 'web-2', port: 8002, tags: ['v2', 'canary'] });
    await e3.register({ name: 'db', id: 'db-1', port: 5432 });
    await until(() => members.every((m) => m.members().length === 4 && m.lookup('web').length === 2 && m.lookup('db').length === 1), 20_000);
    http = `http://${members[0]?.listening('http') as string}`;
  }, 40_000);

  afterAll(async () => {
    await Promise.all(members.map((m) => m.close()));
  });

  const got = (name: string, id: string): UserEvent[] => (heard.get(name) ?? []).filter((e) => e.id === id);
  const names = (id: string): string[] => members.filter((m) => got(m.name, id).length > 0).map((m) => m.name);

  test('an event fired at one member reaches every member exactly once, re-gossiped or not', async () => {
    const [e0] = members as [Grapevine];
    const before = members.reduce((n, m) => n + (eventStats(m).duplicates ?? 0), 0);
    const fired = e0.fire('deploy', 'v42');
    expect(fired.id).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
    expect(fired).toMatchObject({ name: 'deploy', origin: 'e0', nodeFilter: '', serviceFilter: '', tagFilter: '' });
    await until(() => names(fired.id).length === 4, SPREAD_MS);
    // Every member re-gossips what is new to it: the copies keep arriving for a while after the first.
    await until(() => members.reduce((n, m) => n + (eventStats(m).duplicates ?? 0), 0) > before);
    await sleep(1_500);
    for (const m of members) {
      const seen = got(m.name, fired.id);
      expect(seen.length, `${m.name} delivered it ${seen.length} times`).toBe(1);
      expect(text(seen[0]?.payload as Uint8Array)).toBe('v42');
      expect(seen[0]).toMatchObject({ name: 'deploy', origin: 'e0', ltime: fired.ltime });
    }
  });

  test('filters deliver only where they match (Consul: node name, its services, their tags), and every member relays', async () => {
    const [e0, e1, e2, e3] = members as [Grapevine, Grapevine, Grapevine, Grapevine];
    const filtered = (): number[] => members.map((m) => eventStats(m).filtered ?? 0);
    const cases: [string, Parameters<Grapevine['fire']>[2], string[]][] = [
      ['by-node', { node: '^e[13]$' }, ['e1', 'e3']],
      ['by-service', { service: '^web$' }, ['e1', 'e2']],
      ['by-tag', { service: 'we', tag: '^canary$' }, ['e2']],
      ['by-nothing', { service: '^nope$' }, []],
    ];
    for (const [name, options, expected] of cases) {
      const before = filtered();
      const e = (name === 'by-tag' ? e3 : e0).fire(name, 'x', options);
      // Each member that must not deliver it has heard it (counted as filtered): it relayed it.
      await until(() => {
        const now = filtered();
        return members.every((m, i) => expected.includes(m.name) ? true : (now[i] as number) > (before[i] as number));
      }, SPREAD_MS);
      await until(() => names(e.id).length === expected.length, SPREAD_MS);
      await sleep(300);
      expect(names(e.id), name).toEqual(expected);
    }
    // The firing member applies the filters to itself too.
    const self = e1.fire('self', '', { node: '^e1$' });
    await until(() => got('e1', self.id).length === 1, SPREAD_MS);
    expect(e2.stats().interfaces.events?.tooOld).toBe(0);
  });

  test('Lamport times: each fire increments, receipt witnesses, and a member that just joined fires at the cluster\'s time', async () => {
    const [e0, e1] = members as [Grapevine, Grapevine];
    const a = e0.fire('tick', '1');
    const b = e0.fire('tick', '2');
    expect(b.ltime).toBe(a.ltime + 1);
    await until(() => got('e1', b.id).length === 1, SPREAD_MS);
    const c = e1.fire('tock');
    expect(c.ltime).toBeGreaterThan(b.ltime);
    const newcomer = await Grapevine.start({ name: 'e4', bind: '127.0.0.1:0', profile: 'local', keyring: [KEY], seeds: [e1.address] });
    try {
      await until(() => (eventStats(newcomer).syncsHeard ?? 0) > 0);
      const d = newcomer.fire('hello');
      expect(d.ltime).toBeGreaterThan(c.ltime);
      await until(() => names(d.id).length === 4, SPREAD_MS);
      expect(c.payload.length).toBe(0);
      // What the cluster held before it joined (a dozen events, offered in the syncs) is history there
      // (serf's eventJoinIgnore): its own event is delivered, and at most one still being gossiped.
      expect(eventStats(newcomer).tooOld).toBeGreaterThan(0);
      expect(eventStats(newcomer).delivered).toBeLessThanOrEqual(2);
    } finally {
      await newcomer.close();
    }
  });

  test('limits and misuse: oversized events name the limit, bad filters and names are refused, events: false has no fire', async () => {
    const [e0] = members as [Grapevine];
    expect(EVENT_BYTES_MAX).toBe(512);
    expect(() => e0.fire('x', new Uint8Array(EVENT_BYTES_MAX - 1))).not.toThrow();
    const over = (): unknown => e0.fire('x', new Uint8Array(EVENT_BYTES_MAX));
    expect(over).toThrow(OversizedError);
    expect(over).toThrow(/user event \(name, payload and filters\) is 513 bytes, limit is 512/);
    expect(() => e0.fire('x', 'y', { service: 's'.repeat(EVENT_BYTES_MAX) })).toThrow(OversizedError);
    expect(() => e0.fire('', 'y')).toThrow(InvalidOptionError);
    expect(() => e0.fire('x', 'y', { tag: 'v1' })).toThrow(/tag: cannot filter on a tag without a service filter/);
    expect(() => e0.fire('x', 'y', { node: '(a' })).toThrow(/node: invalid node filter: error parsing regexp: missing closing \)/);
    expect(() => e0.fire('x', 'y', { node: '(?=a)' })).toThrow(InvalidOptionError);
    expect(() => e0.fire('x', 42 as unknown as string)).toThrow(/payload: must be a Uint8Array or a string/);
    expect(() => e0.fire('x', 'y', { nodes: 'a' } as never)).toThrow(/nodes: unknown option/);
    const off = await Grapevine.start({ name: 'off', bind: '127.0.0.1:0', profile: 'local', events: false });
    try {
      expect(() => off.fire('x')).toThrow(InvalidStateError);
      expect(() => off.fire('x')).toThrow(/events: false/);
      expect(off.stats().interfaces.events).toBeUndefined();
    } finally {
      await off.close();
    }
    await expect(Grapevine.start({ name: 'bad', bind: '127.0.0.1:0', events: 'yes' as never })).rejects.toThrow(/events: must be true or false/);
  });

  test('with a keyring, a forged event in clear is dropped and never delivered', async () => {
    const [, e1] = members as [Grapevine, Grapevine];
    const dropped: string[] = [];
    const onDropped = (d: { reason: string }): void => void dropped.push(d.reason);
    e1.on('dropped', onDropped);
    const forged: WireEvent = {
      id: '11111111-2222-4333-8444-555555555555', name: 'forged', payload: new TextEncoder().encode('rm -rf'), ltime: 1_000_000, origin: 'e0', nodeFilter: '', serviceFilter: '', tagFilter: '',
    };
    try {
      await sendClear(e1, encodeEvent(forged));
      await until(() => dropped.length > 0);
      // Something real after it, so the forged one had every chance to arrive first.
      const real = members[2]?.fire('after-forgery') as UserEvent;
      await until(() => got('e1', real.id).length === 1, SPREAD_MS);
      expect(members.some((m) => (heard.get(m.name) ?? []).some((e) => e.name === 'forged'))).toBe(false);
      expect(real.ltime).toBeLessThan(1_000_000);
    } finally {
      e1.off('dropped', onDropped);
    }
  });

  test('HTTP: PUT /v1/event/fire and GET /v1/event/list in Consul\'s shapes; X-Consul-Index is the last ID folded as Consul does', async () => {
    const res = await fetch(`${http}/v1/event/fire/release?service=${encodeURIComponent('^web$')}&tag=v1`, { method: 'PUT', body: 'build 7', headers: { 'Content-Type': 'application/octet-stream' } });
    expect(res.status).toBe(200);
    const fired = await res.json() as Record<string, unknown>;
    expect(Object.keys(fired)).toEqual(['ID', 'Name', 'Payload', 'NodeFilter', 'ServiceFilter', 'TagFilter', 'Version', 'LTime']);
    expect(fired).toMatchObject({ Name: 'release', Payload: Buffer.from('build 7').toString('base64'), NodeFilter: '', ServiceFilter: '^web$', TagFilter: 'v1', Version: 1 });
    expect(typeof fired.LTime).toBe('number');
    // Filtered away from e0 (which serves this API) but delivered at e1, whose list shows it.
    const at1 = `http://${members[1]?.listening('http') as string}`;
    await until(async () => ((await (await fetch(`${at1}/v1/event/list?name=release`)).json()) as unknown[]).length === 1, SPREAD_MS);
    const list = await fetch(`${at1}/v1/event/list?name=release`);
    const events = await list.json() as Record<string, unknown>[];
    expect(events[0]).toEqual(fired);
    expect(BigInt(list.headers.get('x-consul-index') as string)).toBe(goIndex(fired.ID as string));
    expect(((await (await fetch(`${http}/v1/event/list?name=release`)).json()) as unknown[])).toEqual([]);
    // None yet under a name: index 1, as Consul (no hot loop for watchers).
    expect((await fetch(`${http}/v1/event/list?name=never`)).headers.get('x-consul-index')).toBe('1');
    // An empty body is a null Payload (Go's nil []byte); errors are 400 with the reason.
    const empty = await (await fetch(`${http}/v1/event/fire/ping`, { method: 'PUT' })).json() as Record<string, unknown>;
    expect(empty.Payload).toBeNull();
    const big = await fetch(`${http}/v1/event/fire/big`, { method: 'PUT', body: 'x'.repeat(600) });
    expect(big.status).toBe(400);
    expect(await big.text()).toMatch(/limit is 512/);
    expect((await fetch(`${http}/v1/event/fire/x?tag=v1`, { method: 'PUT' })).status).toBe(400);
    expect((await fetch(`${http}/v1/event/fire/`, { method: 'PUT' })).status).toBe(400);
  });

  test('the consul npm client: event.fire and event.list', async () => {
    const [, , e2] = members as [Grapevine, Grapevine, Grapevine];
    const [host, port] = (members[0]?.listening('http') as string).split(':') as [string, string];
    const consul = new Consul({ host, port: Number(port) });
    const fired = await consul.event.fire({ name: 'npm-deploy', payload: 'from npm', node: '^e' }) as { ID: string; Name: string; Payload: string; NodeFilter: string };
    expect(fired).toMatchObject({ Name: 'npm-deploy', Payload: 'from npm', NodeFilter: '^e' });
    await until(() => got('e2', fired.ID).length === 1, SPREAD_MS);
    expect(text(got('e2', fired.ID)[0]?.payload as Uint8Array)).toBe('from npm');
    const list = await consul.event.list({ name: 'npm-deploy' }) as { ID: string; Payload: string; LTime: number }[];
    expect(list.map((e) => [e.ID, e.Payload])).toEqual([[fired.ID, 'from npm']]);
    // Another member's event arrives in this agent's list.
    const other = e2.fire('npm-deploy', 'from e2');
    await until(async () => ((await consul.event.list({ name: 'npm-deploy' })) as unknown[]).length === 2, SPREAD_MS);
    const both = await consul.event.list({ name: 'npm-deploy' }) as { ID: string; LTime: number }[];
    expect(both.map((e) => e.ID)).toEqual([fired.ID, other.id]);
  });

  test.skipIf(!hasPythonConsul)('python3-consul: event.fire, event.list, and a blocking list woken by an event fired at another member', async () => {
    const [host, port] = (members[0]?.listening('http') as string).split(':') as [string, string];
    const script = `
import json, sys, time, consul
c = consul.Consul(host=sys.argv[1], port=int(sys.argv[2]))
out = {}
out["fired"] = c.event.fire("py-deploy", "from python", node="^e0$")
index, events = c.event.list(name="py-deploy")
out["index"] = index
out["listed"] = [[e["ID"], e["Payload"].decode()] for e in events]
print(json.dumps(out), flush=True)
started = time.time()
index2, events2 = c.event.list(name="py-deploy", index=index, wait="20s")
out["waited"] = time.time() - started
out["index2"] = index2
out["woken"] = [[e["Name"], (e["Payload"] or b"").decode()] for e in events2]
print(json.dumps(out), flush=True)
`;
    let firstLine = '';
    const child = promisify(execFile)(PYTHON, ['-c', script, host, port], { timeout: 30_000 });
    child.child.stdout?.on('data', (d: Buffer) => {
      firstLine += d.toString();
    });
    await until(() => firstLine.includes('\n'), 20_000);
    const first = JSON.parse(firstLine.split('\n')[0] as string) as { fired: { ID: string; Payload: string }; index: string; listed: string[][] };
    expect(first.fired.Payload).toBe(Buffer.from('from python').toString('base64'));
    expect(first.listed).toEqual([[first.fired.ID, 'from python']]);
    expect(BigInt(first.index)).toBe(goIndex(first.fired.ID));
    await sleep(1_000);
    members[3]?.fire('py-deploy', 'woke you');
    const { stdout } = await child;
    const out = JSON.parse(stdout.trim().split('\n')[1] as string) as { waited: number; index2: string; woken: string[][] };
    expect(out.waited).toBeGreaterThan(0.8);
    expect(out.waited).toBeLessThan(15);
    expect(out.woken).toEqual([['py-deploy', 'from python'], ['py-deploy', 'woke you']]);
    expect(out.index2).not.toBe(first.index);
  }, 40_000);
});

describe('user events: what a peer sends (no keyring, packets in clear)', () => {
  let m: Grapevine;
  const heard: UserEvent[] = [];
  const wire = (over: Partial<WireEvent>): Uint8Array => encodeEvent({
    id: '0f0f0f0f-0000-4000-8000-000000000001', name: 'peer', payload: new Uint8Array([1, 2, 3]), ltime: 5, origin: 'someone', nodeFilter: '', serviceFilter: '', tagFilter: '', ...over,
  });

  beforeAll(async () => {
    m = await Grapevine.start({ name: `${'a'.repeat(32)}!`, bind: '127.0.0.1:0', profile: 'local' });
    m.on('user-event', (e) => heard.push(e));
  });

  afterAll(async () => {
    await m.close();
  });

  test('the same event twice is delivered once; one older than the de-duplication buffer is dropped; garbage is counted', async () => {
    await sendClear(m, wire({}));
    await sendClear(m, wire({}));
    await until(() => (eventStats(m).duplicates ?? 0) === 1);
    expect(heard.map((e) => [e.name, e.ltime, e.origin, [...e.payload]])).toEqual([['peer', 5, 'someone', [1, 2, 3]]]);
    // Witnessing a later time moves the clock past it: the next fire here is later still.
    await sendClear(m, wire({ id: '0f0f0f0f-0000-4000-8000-000000000002', ltime: 10_000 }));
    await until(() => heard.length === 2);
    expect(m.fire('mine').ltime).toBe(10_001);
    // Now 5 is more than 512 Lamport times ago: it could not be told from one delivered, so it is dropped.
    await sendClear(m, wire({ id: '0f0f0f0f-0000-4000-8000-000000000003', ltime: 5 }));
    await until(() => (eventStats(m).tooOld ?? 0) === 1);
    // Truncated, an unknown kind, a name over the limit: counted, never delivered.
    const good = wire({ id: '0f0f0f0f-0000-4000-8000-000000000004', ltime: 10_002 });
    await sendClear(m, good.subarray(0, good.length - 1));
    await sendClear(m, new Uint8Array([9, 1, 0, 0, 0, 0, 0, 0, 0, 0]));
    await sendClear(m, wire({ id: '0f0f0f0f-0000-4000-8000-000000000005', ltime: 10_003, name: 'n'.repeat(EVENT_BYTES_MAX + 1), payload: new Uint8Array(0) }));
    await until(() => (eventStats(m).malformed ?? 0) === 3);
    // A filter that a backtracking engine would take 2^32 steps over on this member's name (32 a's and a !) runs in linear time here.
    await sendClear(m, wire({ id: '0f0f0f0f-0000-4000-8000-000000000006', ltime: 10_004, nodeFilter: '^(a|a)*$' }));
    await until(() => (eventStats(m).filtered ?? 0) === 1);
    await sleep(100);
    expect(heard.map((e) => e.name)).toEqual(['peer', 'peer', 'mine']);
  });
});
