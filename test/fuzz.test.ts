/**
 * Hostile input over real UDP and TCP to real members (issue 11), bounded to well under a
 * minute: valid, mutated, truncated, spliced, random and wrongly sealed packets and frames, from
 * a seeded fast-check stream (FUZZ_SEED=n replays one). Asserts: nothing throws out of a socket
 * callback (vitest fails the run on any), no answer to the fuzzer is larger than what it sent,
 * with a keyring nothing changes at all and nothing is answered but a key notice (once a second
 * at most per member), and every member still answers a ping afterwards.
 * (Without a keyring, forged alives add phantom members by design; they dilute gossip until they
 * are found dead, so the real members' own views can take minutes to agree again.)
 * The long run with heap and event-loop figures is `npm run fuzz`.
 */
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { DATAGRAM_CHANNEL, encodePacket, Grapevine, Keyring, type Member, MessageType, ReplayStamp, seededRng } from '../src/index.js';
import { HostileSender, hostileInputs } from './fuzz-inputs.js';
import { until } from './until.js';

const SEED = Number(process.env.FUZZ_SEED ?? Math.floor(Math.random() * 2 ** 31));
const INPUTS = 6_000;
const KEY = new Uint8Array(32).fill(7);


const view = (g: Grapevine): string => JSON.stringify(g.members().map((m: Member) => [m.name, m.addr, m.state, m.incarnation, m.version]).sort());

describe.each([false, true])('fuzzing real members (keyring: %s)', (sealed) => {
  const members: Grapevine[] = [];
  beforeAll(async () => {
    const keyring = sealed ? { keyring: [KEY] } : {};
    members.push(await Grapevine.start({ name: 'a', bind: '127.0.0.1:0', profile: 'local', ...keyring }));
    for (const name of ['b', 'c']) members.push(await Grapevine.start({ name, bind: '127.0.0.1:0', profile: 'local', seeds: [members[0]!.address], ...keyring }));
    await until(() => members.every((g) => g.members().filter((m) => m.state === 'alive').length === 3), 15_000);
  }, 30_000);

  afterAll(async () => {
    await Promise.all(members.map((g) => g.close()));
  });

  test(`${INPUTS} hostile inputs (seed ${SEED})`, async () => {
    const replay = `FUZZ_SEED=${SEED} npx vitest run test/fuzz.test.ts`;
    const names = members.map((g) => g.name);
    const addrs = members.map((g) => g.address);
    const before = members.map(view);
    const indexBefore = members.map((g) => g.catalog.index);
    const suspicions: string[] = [];
    for (const g of members) g.on('suspect', (m) => suspicions.push(`${g.name} suspected ${m.name}`));
    const inputs = fc.sample(fc.tuple(hostileInputs(names, addrs, sealed), fc.integer({ min: 0, max: 2 })), { seed: SEED, numRuns: INPUTS });
    const sender = await HostileSender.open();
    const started = Date.now();
    try {
      for (const [input, to] of inputs) await sender.send(addrs[to]!, input);
      await new Promise((r) => setTimeout(r, 500));
    } finally {
      sender.close();
    }
    const seconds = (Date.now() - started) / 1_000;
    console.log(`fuzz (keyring ${sealed}, seed ${SEED}): ${sender.sent.datagrams} datagrams (${sender.sent.datagramBytes} bytes), ${sender.sent.frames} frames; `
      + `${sender.replies.count} replies (${sender.replies.bytes} bytes, largest ${sender.replies.largest}), key notices ${JSON.stringify(Object.fromEntries(sender.notices))} `
      + `in ${seconds.toFixed(1)} s; dropped ${JSON.stringify(members[0]!.stats().core.dropped)}`);
    expect(sender.replies.count, replay).toBeLessThanOrEqual(sender.sent.datagrams);
    expect(sender.replies.bytes, replay).toBeLessThanOrEqual(sender.sent.datagramBytes);
    if (sealed) {
      expect(members.map(view), replay).toEqual(before);
      expect(members.map((g) => g.catalog.index), replay).toEqual(indexBefore);
      expect(suspicions, replay).toEqual([]);
      expect(sender.replies.count, replay).toBe(0);
    }
    // What a member says in clear to an input it cannot read: that keys differ, once a second at most.
    for (const [from, n] of sender.notices) {
      expect(addrs, replay).toContain(from);
      expect(n, `${replay}: ${n} key notices from ${from} in ${seconds} s`).toBeLessThanOrEqual(Math.ceil(seconds) + 1);
    }
    // Legitimate probes are still answered: a ping to each member, sealed when the cluster is.
    const prober = await HostileSender.open();
    const stamp = new ReplayStamp('prober', Date.now());
    try {
      for (const [i, g] of members.entries()) {
        const ping = encodePacket([{ type: MessageType.Ping, seq: i, target: g.name }]);
        const bytes = sealed ? new Keyring([KEY]).seal(stamp.stamp(ping, DATAGRAM_CHANNEL), seededRng(i)) : ping;
        await prober.send(g.address, { kind: 'valid', stream: false, bytes });
      }
      const answered = await until(() => prober.replies.count === members.length, 5_000).then(() => true, () => false);
      expect(answered, `${replay}: ${prober.replies.count} of ${members.length} pings answered`).toBe(true);
    } finally {
      prober.close();
    }
  }, 90_000);
});
