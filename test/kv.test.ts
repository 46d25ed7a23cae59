/**
 * The key-value store on real members (src/kv/, src/http/kv.ts): a put at one member is read at
 * every other, large values too, deletes spread, a member that joins later gets everything by
 * anti-entropy; Consul's /v1/kv shapes with X-Consul-Index on every answer (404 included), raw
 * reads, keys with a separator, blocking reads woken by a put on another member; what needs
 * consensus refused with 400; the consul npm package and Debian's python3-consul; with a keyring
 * a forged write in clear changes nothing. Members on 127.0.0.1; every wait bounded.
 */
import { execFile } from 'node:child_process';
import { createSocket } from 'node:dgram';
import { type AddressInfo, createServer } from 'node:net';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import Consul from 'consul';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { APP_CHANNELS, encodePacket, Grapevine, MessageType } from '../src/index.js';
import { available, runs } from './needs.js';
import { until } from './until.js';

const PYTHON = '/usr/bin/python3';
const hasPythonConsul = available('python3-consul', runs(PYTHON, ['-c', 'import consul']), 'apt-get install -y python3-consul');
const text = (b: Uint8Array | undefined): string | undefined => (b === undefined ? undefined : new TextDecoder().decode(b));

describe('the key-value store across members', () => {
  const members: Grapevine[] = [];
  let base = '';

  beforeAll(async () => {
    members.push(await Grapevine.start({ name: 'k0', bind: '127.0.0.1:0', profile: 'local', http: '127.0.0.1:0' }));
    for (let i = 1; i < 3; i++) members.push(await Grapevine.start({ name: `k${i}`, bind: '127.0.0.1:0', profile: 'local', http: '127.0.0.1:0', seeds: [members[0]?.address as string] }));
    await until(() => members.every((m) => m.members().length === 3));
    base = `http://${members[0]?.listening('http') as string}/v1/kv`;
  }, 30_000);

  afterAll(async () => {
    await Promise.all(members.map((m) => m.close()));
  });

  test('a put at one member is read at every other; large values and deletes too; a later joiner gets it all', async () => {
    const [k0, k1, k2] = members as [Grapevine, Grapevine, Grapevine];
    k1.kv.put('app/flag', 'on', { flags: 42 });
    k2.kv.put('app/blob', new Uint8Array(300_000).fill(9));
    await until(() => members.every((m) => text(m.kv.get('app/flag')?.value) === 'on' && m.kv.get('app/blob')?.value.length === 300_000));
    expect(k0.kv.get('app/flag')?.flags).toBe(42n);
    expect(k0.kv.delete('app/flag')).toBe(1);
    await until(() => members.every((m) => m.kv.get('app/flag') === undefined));
    for (let i = 0; i < 500; i++) k0.kv.put(`bulk/${i}`, `${i}`);
    const late = await Grapevine.start({ name: 'late', bind: '127.0.0.1:0', profile: 'local', seeds: [k2.address] });
    try {
      await until(() => late.kv.list('bulk/').length === 500 && late.kv.get('app/blob') !== undefined, 15_000);
      expect(late.kv.get('app/flag')).toBeUndefined();
    } finally {
      await late.close();
    }
  }, 30_000);

  test('/v1/kv in Consul\'s shapes: X-Consul-Index everywhere, 404 for a missing key, raw, keys with a separator, recurse', async () => {
    const missing = await fetch(`${base}/nothing/here`);
    expect(missing.status).toBe(404);
    expect(Number(missing.headers.get('x-consul-index'))).toBeGreaterThan(0);
    expect(await (await fetch(`${base}/web/config?flags=18446744073709551615`, { method: 'PUT', body: 'port=80' })).json()).toBe(true);
    expect(await (await fetch(`${base}/web/empty`, { method: 'PUT' })).text()).toBe('true');
    await fetch(`${base}/web/sub/deeper`, { method: 'PUT', body: 'x' });
    const got = await fetch(`${base}/web/config`);
    const index = Number(got.headers.get('x-consul-index'));
    // The uint64 written exactly, which JSON.parse cannot keep: compare the text.
    const body = await got.text();
    expect(body).toContain('"Flags":18446744073709551615');
    const [pair] = JSON.parse(body) as { Key: string; Value: string; CreateIndex: number; ModifyIndex: number; LockIndex: number }[];
    expect(pair).toMatchObject({ Key: 'web/config', Value: Buffer.from('port=80').toString('base64'), LockIndex: 0 });
    expect(pair?.ModifyIndex).toBe(index);
    expect(await (await fetch(`${base}/web/config?raw`)).text()).toBe('port=80');
    expect(((await (await fetch(`${base}/web/empty`)).json()) as { Value: unknown }[])[0]?.Value).toBeNull();
    expect(await (await fetch(`${base}/web/?keys&separator=/`)).json()).toEqual(['web/config', 'web/empty', 'web/sub/']);
    expect(((await (await fetch(`${base}/web/?recurse`)).json()) as { Key: string }[]).map((p) => p.Key)).toEqual(['web/config', 'web/empty', 'web/sub/deeper']);
    expect(await (await fetch(`${base}/web?recurse`, { method: 'DELETE' })).json()).toBe(true);
    expect((await fetch(`${base}/web/?recurse`)).status).toBe(404);
  });

  test('a blocking read is woken by a put on another member, and answers at once for an old index', async () => {
    const [, k1] = members as [Grapevine, Grapevine];
    await fetch(`${base}/watched`, { method: 'PUT', body: 'v1' });
    const first = await fetch(`${base}/watched`);
    const index = first.headers.get('x-consul-index') as string;
    const started = Date.now();
    const waiting = fetch(`${base}/watched?index=${index}&wait=10s`);
    setTimeout(() => k1.kv.put('watched', 'v2'), 300);
    const woken = await waiting;
    expect(Date.now() - started).toBeLessThan(8_000);
    expect(Number(woken.headers.get('x-consul-index'))).toBeGreaterThan(Number(index));
    expect(Buffer.from(((await woken.json()) as { Value: string }[])[0]?.Value as string, 'base64').toString()).toBe('v2');
    const stale = Date.now();
    await fetch(`${base}/watched?index=1&wait=10s`);
    expect(Date.now() - stale).toBeLessThan(2_000);
  });

  test('what needs consensus is refused with 400 saying why', async () => {
    for (const [method, path] of [['PUT', '/x?cas=0'], ['PUT', '/x?acquire=abc'], ['PUT', '/x?release=abc'], ['DELETE', '/x?cas=3']] as const) {
      const res = await fetch(`${base}${path}`, { method, body: method === 'PUT' ? 'v' : undefined });
      expect(res.status).toBe(400);
      expect(await res.text()).toMatch(/^\?(cas|acquire|release) needs consensus; this store is eventually consistent \(last write wins\)$/m);
    }
    const root = base.replace('/kv', '');
    const txn = await fetch(`${root}/txn`, { method: 'PUT', body: '[]' });
    expect([txn.status, (await txn.text()).trim()]).toEqual([400, 'a transaction needs consensus; this store is eventually consistent']);
    expect((await fetch(`${root}/session/create`, { method: 'PUT' })).status).toBe(400);
    expect((await fetch(`${base}/`, { method: 'PUT', body: 'v' })).status).toBe(400);
  });

  test('the consul npm client: set, get, keys, recurse, del', async () => {
    const [, , k2] = members as [Grapevine, Grapevine, Grapevine];
    const [host, port] = (members[0]?.listening('http') as string).split(':') as [string, string];
    const consul = new Consul({ host, port: Number(port) });
    expect(await consul.kv.set('npm/one', 'first')).toBe(true);
    await consul.kv.set({ key: 'npm/two', value: 'second', flags: 7 });
    const one = await consul.kv.get('npm/one');
    expect(one).toMatchObject({ Key: 'npm/one', Value: 'first' });
    expect(await consul.kv.keys('npm/')).toEqual(['npm/one', 'npm/two']);
    expect((await consul.kv.get({ key: 'npm/', recurse: true }) as { Key: string; Flags: number }[]).map((p) => [p.Key, p.Flags])).toEqual([['npm/one', 0], ['npm/two', 7]]);
    expect(await consul.kv.get('npm/none')).toBeUndefined();
    await until(() => text(k2.kv.get('npm/two')?.value) === 'second');
    await consul.kv.del('npm/one');
    await until(() => k2.kv.get('npm/one') === undefined);
  });

  test.skipIf(!hasPythonConsul)('python3-consul: put, get, keys, recurse, delete, and a blocking get woken by a put on another member', async () => {
    const [, k1] = members as [Grapevine, Grapevine];
    const [host, port] = (members[0]?.listening('http') as string).split(':') as [string, string];
    const script = `
import json, sys, consul
c = consul.Consul(host=sys.argv[1], port=int(sys.argv[2]))
out = {}
out["put"] = c.kv.put("py/a", "alpha")
c.kv.put("py/b/c", "gamma", flags=3)
index, item = c.kv.get("py/a")
out["get"] = [item["Key"], item["Value"].decode()]
index2, keys = c.kv.get("py/", keys=True, separator="/")
out["keys"] = keys
index3, items = c.kv.get("py/", recurse=True)
out["recurse"] = [[i["Key"], i["Flags"]] for i in items]
index4, none = c.kv.get("py/missing")
out["missing"] = none
out["missing_index"] = int(index4)
sys.stdout.write(json.dumps(out) + "\\n")
sys.stdout.flush()
index5, woken = c.kv.get("py/a", index=index, wait="10s")
out2 = {"woken": woken["Value"].decode(), "later": int(index5) > int(index)}
out2["deleted"] = c.kv.delete("py/", recurse=True)
index6, gone = c.kv.get("py/", recurse=True)
out2["gone"] = gone
print(json.dumps(out2))
`;
    const run = promisify(execFile)(PYTHON, ['-c', script, host, port], { timeout: 30_000 });
    await until(() => text(k1.kv.get('py/a')?.value) === 'alpha');
    await new Promise((r) => setTimeout(r, 300));
    k1.kv.put('py/a', 'beta');
    const lines = (await run).stdout.trim().split('\n').map((l) => JSON.parse(l) as Record<string, unknown>);
    expect(lines[0]).toMatchObject({ put: true, get: ['py/a', 'alpha'], keys: ['py/a', 'py/b/'], recurse: [['py/a', 0], ['py/b/c', 3]], missing: null });
    expect(lines[1]).toEqual({ woken: 'beta', later: true, deleted: true, gone: null });
  });
});

describe('the store on disk', () => {
  test('a cluster restarted whole keeps its data, deletes included; a corrupt snapshot stops the start naming it', async () => {
    const dirs = await Promise.all([0, 1].map(() => mkdtemp(join(tmpdir(), 'grapevine-kv-'))));
    try {
      const a = await Grapevine.start({ name: 'pa', bind: '127.0.0.1:0', profile: 'local', dataDir: dirs[0] });
      const b = await Grapevine.start({ name: 'pb', bind: '127.0.0.1:0', profile: 'local', dataDir: dirs[1], seeds: [a.address] });
      a.kv.put('kept', 'yes');
      a.kv.put('gone', 'soon');
      await until(() => b.kv.get('gone') !== undefined);
      b.kv.delete('gone');
      await until(() => a.kv.get('gone') === undefined);
      await Promise.all([a.close(), b.close()]);
      // Each comes back alone, from its own snapshot (the peers it saved are at ports gone now: it waits a second for them).
      const again = await Promise.all(dirs.map((dataDir) => Grapevine.start({ bind: '127.0.0.1:0', profile: 'local', dataDir, joinTimeoutMs: 1_000, kv: { syncIntervalMs: 60_000 } })));
      for (const m of again) {
        expect(text(m.kv.get('kept')?.value)).toBe('yes');
        expect(m.kv.get('gone')).toBeUndefined();
      }
      await Promise.all(again.map((m) => m.close()));
      await writeFile(join(dirs[0] as string, 'kv.json'), '{"grapevine":"kv","format":1,"records":[["k","!!","x",1,0,"w",false]]}');
      await expect(Grapevine.start({ bind: '127.0.0.1:0', profile: 'local', dataDir: dirs[0] })).rejects.toThrow(/kv\.json: has a bad record/);
    } finally {
      await Promise.all(dirs.map((d) => rm(d, { recursive: true, force: true })));
    }
  }, 30_000);
});

describe('no reflection', () => {
  test('a stranger\'s digest that differs makes a member contact nobody: only members are asked', async () => {
    const a = await Grapevine.start({ name: 'kr', bind: '127.0.0.1:0', profile: 'local' });
    a.kv.put('something', 'so that digests differ');
    const tcp = createServer();
    let connections = 0;
    tcp.on('connection', (c) => {
      connections++;
      c.destroy();
    });
    await new Promise<void>((r) => tcp.listen(0, '127.0.0.1', r));
    const port = (tcp.address() as AddressInfo).port;
    const socket = createSocket('udp4');
    await new Promise<void>((r) => socket.bind(port, '127.0.0.1', r));
    const dropped: string[] = [];
    a.on('dropped', (d) => dropped.push(d.reason));
    try {
      const { Packr } = await import('msgpackr/pack');
      const target = Number(a.address.slice(a.address.lastIndexOf(':') + 1));
      for (const payload of [new Packr({ useRecords: false }).pack([5, new Uint8Array(8)]), new Packr({ useRecords: false }).pack([2, 'something', Date.now() + 1e6, 0, 'x'])]) {
        await new Promise<void>((r) => socket.send(encodePacket([{ type: MessageType.App, channel: APP_CHANNELS.kv, payload, kind: 0 }]), target, '127.0.0.1', () => r()));
      }
      await new Promise((r) => setTimeout(r, 1_000));
      expect(connections).toBe(0);
    } finally {
      socket.close();
      tcp.close();
      await a.close();
    }
  });
});

describe('a keyring guards the store', () => {
  test('a write forged in clear is dropped, and no member holds it', async () => {
    const key = new Uint8Array(32).fill(4);
    const a = await Grapevine.start({ name: 'ka', bind: '127.0.0.1:0', profile: 'local', keyring: [key] });
    const dropped: string[] = [];
    a.on('dropped', (d) => dropped.push(d.reason));
    try {
      // An honest member's gossip of one write, sent without the key.
      const { Packr } = await import('msgpackr/pack');
      const payload = new Packr({ useRecords: false }).pack([1, [['forged', new TextEncoder().encode('evil'), '0', Date.now(), 0, 'mallory', false]]]);
      const socket = createSocket('udp4');
      const port = Number(a.address.slice(a.address.lastIndexOf(':') + 1));
      await new Promise<void>((r) => socket.send(encodePacket([{ type: MessageType.App, channel: APP_CHANNELS.kv, payload, kind: 0 }]), port, '127.0.0.1', () => r()));
      socket.close();
      await until(() => dropped.length > 0);
      expect(a.kv.get('forged')).toBeUndefined();
    } finally {
      await a.close();
    }
  });
});
