/**
 * Live key rotation (src/core/keyring-ops.ts, src/http/operator.ts): install, use and remove
 * through /v1/operator/keyring reach every member by gossip, the listing counts each member's
 * keys from its record, use waits until every member holds the key and remove until none seals
 * with it, and no member is lost on the way. Keyring changes commute (a property over random
 * orders), and one that arrives unsealed changes nothing. Members on 127.0.0.1; waits bounded.
 */
import { createSocket } from 'node:dgram';
import { test as propTest } from '@fast-check/vitest';
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import type { Context } from '../src/core/context.js';
import { KeyringOps } from '../src/core/keyring-ops.js';
import { encodePacket, Grapevine, Keyring, KeyringAction, MessageType } from '../src/index.js';
import { until } from './until.js';

const key = (b: number): Uint8Array => new Uint8Array(32).fill(b);
const b64 = (k: Uint8Array): string => Buffer.from(k).toString('base64');
const K1 = key(1);
const K2 = key(2);

describe('rotating keys across a running cluster', () => {
  const members: Grapevine[] = [];
  const changes: string[] = [];
  let url = '';

  beforeAll(async () => {
    const first = await Grapevine.start({ name: 'm0', bind: '127.0.0.1:0', profile: 'local', keyring: [K1], http: '127.0.0.1:0' });
    members.push(first);
    for (let i = 1; i < 4; i++) members.push(await Grapevine.start({ name: `m${i}`, bind: '127.0.0.1:0', profile: 'local', keyring: [K1], seeds: [first.address] }));
    await until(() => members.every((m) => m.members().filter((x) => x.state === 'alive').length === 4));
    for (const m of members) m.on('member', ({ type, member }) => changes.push(`${m.name} saw ${member.name} ${type}`));
    url = `http://${first.listening('http') as string}/v1/operator/keyring`;
  }, 30_000);

  afterAll(async () => {
    await Promise.all(members.map((m) => m.close()));
  });

  const call = async (method: string, body?: unknown): Promise<{ status: number; text: string }> => {
    const res = await fetch(url, { method, ...(body !== undefined ? { body: JSON.stringify(body) } : {}) });
    return { status: res.status, text: await res.text() };
  };
  const ring = (m: Grapevine): string[] => (m.keyring as Keyring).keys().map(b64);

  test('list, install, use, remove: every member follows, and none is suspected on the way', async () => {
    const listed = JSON.parse((await call('GET')).text) as Record<string, unknown>[];
    expect(listed).toEqual([{ WAN: false, Datacenter: 'dc1', Segment: '', Keys: { [b64(K1)]: 4 }, PrimaryKeys: { [b64(K1)]: 4 }, NumNodes: 4 }]);

    const early = await call('PUT', { Key: b64(K2) });
    expect(early.status).toBe(400);
    expect(early.text).toMatch(/not every member holds this key yet \(install it first\): m0, m1, m2, m3/);
    expect(members.every((m) => ring(m)[0] === b64(K1))).toBe(true);

    expect(await call('POST', { Key: b64(K2) })).toEqual({ status: 200, text: '' });
    // The answer came once every record showed it: each ring holds it now.
    for (const m of members) expect(ring(m)).toEqual([b64(K1), b64(K2)]);
    expect(JSON.parse((await call('GET')).text)).toMatchObject([{ Keys: { [b64(K1)]: 4, [b64(K2)]: 4 }, PrimaryKeys: { [b64(K1)]: 4 } }]);

    const stillPrimary = await call('DELETE', { Key: b64(K1) });
    expect(stillPrimary.status).toBe(400);
    expect(stillPrimary.text).toMatch(/Removing the primary key is not allowed/);

    expect((await call('PUT', { Key: b64(K2) })).status).toBe(200);
    for (const m of members) expect(ring(m)[0]).toBe(b64(K2));
    expect((await call('DELETE', { Key: b64(K1) })).status).toBe(200);
    for (const m of members) expect(ring(m)).toEqual([b64(K2)]);
    expect(JSON.parse((await call('GET')).text)).toMatchObject([{ Keys: { [b64(K2)]: 4 }, PrimaryKeys: { [b64(K2)]: 4 }, NumNodes: 4 }]);

    expect(changes.filter((c) => !c.endsWith(' updated'))).toEqual([]);
    // Really rotated: only the new key gets in.
    const newcomer = await Grapevine.start({ name: 'new', bind: '127.0.0.1:0', profile: 'local', keyring: [K2], seeds: [members[2]?.address as string] });
    try {
      await until(() => members.every((m) => m.member('new')?.state === 'alive'));
    } finally {
      await newcomer.close();
    }
    await expect(Grapevine.start({ name: 'old', bind: '127.0.0.1:0', profile: 'local', keyring: [K1], seeds: [members[1]?.address as string], joinTimeoutMs: 1_500 })).rejects.toThrow(/no seed answered/);
  }, 60_000);

  test('bad keys and bodies are refused with the field named', async () => {
    expect(await call('POST', { Key: 'short' })).toMatchObject({ status: 400, text: expect.stringMatching(/Key: must be a base64-encoded 32-byte key/) });
    expect(await call('POST', {})).toMatchObject({ status: 400, text: expect.stringMatching(/Key: missing/) });
    expect(await call('POST', { Key: 7 })).toMatchObject({ status: 400, text: expect.stringMatching(/Key: must be a string/) });
  });
});

describe('keyring changes without a keyring', () => {
  test('a member that does not encrypt answers 400 and drops a keyring change sent to it in clear', async () => {
    const gv = await Grapevine.start({ name: 'plain', bind: '127.0.0.1:0', profile: 'local', http: '127.0.0.1:0' });
    const dropped: string[] = [];
    gv.on('dropped', (d) => dropped.push(d.reason));
    try {
      const res = await fetch(`http://${gv.listening('http') as string}/v1/operator/keyring`);
      expect(res.status).toBe(400);
      expect(await res.text()).toMatch(/gossip encryption is not enabled/);
      expect(() => gv.changeKeyring('install', K1)).toThrow(/need a keyring/);
      const socket = createSocket('udp4');
      const [host, port] = [gv.address.slice(0, gv.address.lastIndexOf(':')), Number(gv.address.slice(gv.address.lastIndexOf(':') + 1))];
      const packet = encodePacket([{ type: MessageType.KeyringOp, action: KeyringAction.Install, key: K2, version: 1, origin: 'rogue' }]);
      await new Promise<void>((r) => socket.send(packet, port, host, () => r()));
      socket.close();
      await until(() => dropped.includes('unsealed-keyring-change'), 5_000);
    } finally {
      await gv.close();
    }
  });
});

describe('keyring changes commute', () => {
  const op = fc.record({
    action: fc.constantFrom(KeyringAction.Install, KeyringAction.Use, KeyringAction.Remove),
    key: fc.integer({ min: 1, max: 4 }),
    version: fc.integer({ min: 1, max: 1_000 }),
    origin: fc.constantFrom('a', 'b', 'c'),
  });
  const apply = (ops: readonly { action: 1 | 2 | 3; key: number; version: number; origin: string }[]): { keys: string[]; primary: string } => {
    const keyring = new Keyring([key(9)]);
    const ctx = { keyring, name: 'self', broadcasts: { enqueue: () => undefined }, drop: () => undefined } as unknown as Context;
    const ops_ = new KeyringOps(ctx);
    for (const o of ops) ops_.onMessage('peer', { type: MessageType.KeyringOp, action: o.action, key: key(o.key), version: o.version, origin: o.origin });
    return { keys: keyring.keys().map(b64).sort(), primary: b64(keyring.primaryKey) };
  };

  propTest.prop([fc.array(op, { maxLength: 12 }), fc.integer()])('members that hear the same changes in any order hold the same ring', (ops, seed) => {
    const shuffled = fc.sample(fc.shuffledSubarray(ops, { minLength: ops.length, maxLength: ops.length }), { seed, numRuns: 1 })[0] as typeof ops;
    expect(apply(shuffled)).toEqual(apply(ops));
  });
});
