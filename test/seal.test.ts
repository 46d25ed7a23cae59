import nacl from 'tweetnacl';
import { describe, expect, test } from 'vitest';
import { Simulation } from '../sim/engine.js';
import { Membership } from '../src/core/membership.js';
import { DATAGRAM_CHANNEL, ReplayGuard, ReplayStamp, STREAM_CHANNEL } from '../src/core/replay.js';
import { Keyring, SEAL_OVERHEAD_BYTES } from '../src/core/seal.js';
import { seededRng } from '../src/core/rng.js';
import { encodePacket, MessageType, recordDigest } from '../src/core/wire.js';

const key = (fill: number): Uint8Array => new Uint8Array(32).fill(fill);

describe('keyring', () => {
  test('the wire is NaCl secretbox: members sealing with tweetnacl (as before 0.1) and with noble read each other; digests are SHA-512', () => {
    const rng = seededRng(9);
    const ring = new Keyring([key(7)]);
    for (const size of [0, 1, 100, 1_400, 70_000]) {
      const plain = new Uint8Array(size).map((_, i) => (i * 31) & 0xff);
      const sealed = ring.seal(plain, rng);
      const nonce = sealed.subarray(3, 27);
      expect(Array.from(nacl.secretbox.open(sealed.subarray(27), nonce, key(7)) ?? [-1])).toEqual(Array.from(plain));
      const theirs = new Uint8Array([...sealed.subarray(0, 27), ...nacl.secretbox(plain, nonce, key(7))]);
      expect(Array.from(theirs)).toEqual(Array.from(sealed));
      const opened = ring.open(theirs);
      expect(opened.ok && Array.from(opened.plain)).toEqual(Array.from(plain));
      const forged = Uint8Array.from(theirs);
      forged[forged.length - 1] = (forged[forged.length - 1] as number) ^ 1;
      if (size > 0) expect(ring.open(forged)).toEqual({ ok: false, reason: 'wrong-key' });
      if (size > 0) expect(Array.from(recordDigest(plain))).toEqual(Array.from(nacl.hash(plain).slice(0, 8)));
    }
  });

  test('seals with the primary key and opens with any key in the ring', () => {
    const rng = seededRng(1);
    const a = new Keyring([key(1)]);
    const b = new Keyring([key(2), key(1)]);
    const plain = encodePacket([{ type: MessageType.Ack, seq: 5 }]);
    const sealed = a.seal(plain, rng);
    expect(sealed.length).toBe(plain.length + SEAL_OVERHEAD_BYTES);
    const opened = b.open(sealed);
    expect(opened.ok && Array.from(opened.plain)).toEqual(Array.from(plain));
    expect(new Keyring([key(3)]).open(sealed)).toEqual({ ok: false, reason: 'wrong-key' });
    expect(a.open(plain)).toEqual({ ok: false, reason: 'plaintext' });
    expect(a.open(sealed.subarray(0, 20))).toEqual({ ok: false, reason: 'bad-seal' });
  });

  test('nonces differ per packet', () => {
    const ring = new Keyring([key(1)]);
    const rng = seededRng(2);
    const p = new Uint8Array(10);
    expect(Array.from(ring.seal(p, rng))).not.toEqual(Array.from(ring.seal(p, rng)));
  });

  test('a tampered packet does not open', () => {
    const ring = new Keyring([key(1)]);
    const sealed = ring.seal(new Uint8Array(40), seededRng(3));
    sealed[sealed.length - 1] = (sealed[sealed.length - 1] as number) ^ 1;
    expect(ring.open(sealed).ok).toBe(false);
  });

  test('an invalid key is refused and never saved', () => {
    expect(() => new Keyring([new Uint8Array(16)])).toThrowError(expect.objectContaining({ option: 'keyring' }));
    expect(() => new Keyring([])).toThrowError(expect.objectContaining({ option: 'keyring' }));
    const ring = new Keyring([key(1)]);
    expect(() => ring.add(new Uint8Array(31))).toThrowError(expect.objectContaining({ code: 'grapevine.invalid-option' }));
    expect(() => ring.use(key(9))).toThrowError(/not in the ring/);
    expect(() => ring.remove(key(1))).toThrowError(/primary/);
    expect(ring.keys()).toHaveLength(1);
  });

  test('use makes a key primary and remove drops it', () => {
    const ring = new Keyring([key(1)]);
    ring.add(key(2));
    ring.add(key(2));
    expect(ring.keys()).toHaveLength(2);
    ring.use(key(2));
    expect(Array.from(ring.primaryKey)).toEqual(Array.from(key(2)));
    ring.remove(key(1));
    expect(ring.keys().map((k) => k[0])).toEqual([2]);
  });
});

describe('encrypted clusters', () => {
  test('a node with the wrong key never joins; its packets are dropped and counted (seed 31)', () => {
    const h = new Simulation({ seed: 31 });
    for (let i = 0; i < 3; i++) {
      h.addNode(`n${i}`, { keyring: new Keyring([key(1)]) });
      if (i > 0) h.join(`n${i}`, ['n0']);
    }
    h.addNode('intruder', { keyring: new Keyring([key(9)]) });
    h.join('intruder', ['n0']);
    h.addNode('plain');
    h.join('plain', ['n1']);
    h.runFor(20_000);
    for (const n of ['n0', 'n1', 'n2']) {
      expect(h.node(n).core.members().map((m) => m.name).sort()).toEqual(['n0', 'n1', 'n2']);
    }
    expect(h.node('intruder').core.members()).toHaveLength(1);
    expect(h.node('n0').core.stats.dropped['wrong-key']).toBeGreaterThan(0);
    expect(h.node('n1').core.stats.dropped.plaintext).toBeGreaterThan(0);
    expect(h.node('plain').core.stats.dropped.encrypted ?? 0).toBe(0); // nobody answered it
  });

  test('live key rotation: add, use, remove on every node with no member ever suspected (seed 32)', () => {
    const h = new Simulation({ seed: 32, network: { lossRate: 0.01 } });
    const rings = new Map<string, Keyring>();
    for (let i = 0; i < 6; i++) {
      const ring = new Keyring([key(1)]);
      rings.set(`n${i}`, ring);
      h.addNode(`n${i}`, { keyring: ring });
      if (i > 0) h.join(`n${i}`, ['n0']);
    }
    h.runFor(5_000);
    // Each step reaches the nodes one at a time, a second apart, as an operator's rollout would.
    for (const step of [(r: Keyring) => r.add(key(2)), (r: Keyring) => r.use(key(2)), (r: Keyring) => r.remove(key(1))]) {
      for (const ring of rings.values()) {
        step(ring);
        h.runFor(1_000);
      }
    }
    h.runFor(10_000);
    for (const n of h.liveNodes()) {
      expect(h.eventsOf(n.name, 'suspect')).toEqual([]);
      expect(n.core.stats.dropped['wrong-key'] ?? 0).toBe(0);
      expect(n.core.members().every((m) => m.state === 'alive')).toBe(true);
    }
    // The old key is gone: a packet sealed with it is now refused.
    const old = new Keyring([key(1)]).seal(encodePacket([{ type: MessageType.Ping, seq: 1, target: 'n0' }]), seededRng(5));
    h.inject('n0', 'x', old);
    expect(h.node('n0').core.stats.dropped['wrong-key']).toBe(1);
  });
});

describe('replay protection (issue 11)', () => {
  const stamped = (stamp: ReplayStamp, n: number, channel: 0 | 1 = DATAGRAM_CHANNEL): Uint8Array[] =>
    Array.from({ length: n }, (_, i) => stamp.stamp(Uint8Array.from([i]), channel));

  test('a window per sender and channel: new counters pass, repeats and counters older than the window do not', () => {
    const guard = new ReplayGuard();
    const packets = stamped(new ReplayStamp('a', 100), 1_200);
    expect(guard.check(0, packets[0]!)).toMatchObject({ ok: true });
    expect(guard.check(0, packets[0]!)).toEqual({ ok: false, reason: 'replay' });
    expect(guard.check(0, packets[5]!).ok).toBe(true);
    expect(guard.check(0, packets[3]!).ok).toBe(true); // reordered, inside the window
    expect(guard.check(0, packets[3]!)).toEqual({ ok: false, reason: 'replay' });
    expect(guard.check(0, packets[1_100]!).ok).toBe(true);
    expect(guard.check(0, packets[10]!)).toEqual({ ok: false, reason: 'replay' }); // 1,090 behind: outside the window
    // Another sender, and the other channel of the same sender, have windows of their own.
    expect(guard.check(0, stamped(new ReplayStamp('b', 100), 1)[0]!).ok).toBe(true);
    expect(guard.check(0, stamped(new ReplayStamp('a', 100), 1, STREAM_CHANNEL)[0]!).ok).toBe(true);
  });

  test('runs: a restart (higher epoch) starts afresh; a previous run is refused once silent, one never heard is refused at once', () => {
    const guard = new ReplayGuard();
    const old = stamped(new ReplayStamp('a', 100), 4);
    expect(guard.check(0, old[0]!).ok).toBe(true);
    const restarted = stamped(new ReplayStamp('a', 200), 3);
    expect(guard.check(1_000, restarted[0]!).ok).toBe(true);
    // Both still speak: two live processes with one name, which must hear each other to settle it.
    expect(guard.check(2_000, old[1]!).ok).toBe(true);
    expect(guard.check(3_000, restarted[1]!).ok).toBe(true);
    // The old run fell silent while the new one speaks: it crashed; anything more from it is a replay.
    expect(guard.check(40_000, old[2]!)).toEqual({ ok: false, reason: 'replay-old-epoch' });
    // A run older than the newest that this node never heard: refused.
    expect(guard.check(40_000, stamped(new ReplayStamp('a', 150), 1)[0]!)).toEqual({ ok: false, reason: 'replay-old-epoch' });
    // A member whose clock stepped back across a restart is heard once its newest run has been silent 10 minutes.
    expect(guard.check(3_000 + 600_001, stamped(new ReplayStamp('a', 50), 1)[0]!).ok).toBe(true);
  });

  test('a replayed sealed ping is answered once (replays spent broadcasts and amplified 9.4x)', () => {
    const ring = new Keyring([key(1)]);
    const core = new Membership({ name: 'a', addr: 'a', rng: seededRng(1), nowMs: 0, keyring: ring });
    const ping = ring.seal(new ReplayStamp('b', 5).stamp(encodePacket([{ type: MessageType.Ping, seq: 1, target: 'a' }]), DATAGRAM_CHANNEL), seededRng(2));
    core.handleDatagram(0, 'b', ping);
    core.handleDatagram(1, 'b', ping);
    let sent = 0;
    for (let t = core.pollTransmit(); t !== undefined; t = core.pollTransmit()) if (!t.stream) sent++;
    expect(sent).toBe(1);
    expect(core.stats.dropped.replay).toBe(1);
  });
});
