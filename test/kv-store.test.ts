/**
 * The key-value store's replica and sync, pure (src/registry/kv.ts, kv-sync.ts), over an
 * in-memory bus: last writer wins under the hybrid logical clock, merging commutes, anti-entropy
 * converges and costs little when replicas agree, and once quiet every replica holds the same
 * map with no deleted key back (a property over random puts, deletes, losses and partitions;
 * fast-check prints the seed of a failure).
 */
import { test as propTest } from '@fast-check/vitest';
import fc from 'fast-check';
import { describe, expect, test } from 'vitest';
import { type KvRecord, KvStore, laterThan } from '../src/registry/kv.js';
import { type KvPort, KvSync } from '../src/registry/kv-sync.js';

const bytes = (s: string): Uint8Array => new TextEncoder().encode(s);

/** Replicas on a bus: gossip goes to every other replica unless lost or cut off; streams are direct request and reply. */
class Bus {
  readonly replicas = new Map<string, { store: KvStore; sync: KvSync }>();
  bytes = 0;
  cut = new Set<string>();
  constructor(private readonly lose: () => boolean = () => false) {}

  add(name: string): { store: KvStore; sync: KvSync } {
    const store = new KvStore(name);
    const port: KvPort = {
      datagramBytesMax: 1_300,
      streamBytesMax: 16 * 1024 * 1024,
      isMember: (addr) => this.replicas.has(addr),
      broadcast: (_key, payload) => {
        for (const [other, r] of this.replicas) {
          if (other === name || this.blocked(name, other) || this.lose()) continue;
          this.bytes += payload.length;
          r.sync.onMessage(0, name, payload, 'datagram');
        }
      },
      send: (addr, payload, stream) => {
        const to = this.replicas.get(addr);
        if (to === undefined || this.blocked(name, addr)) return;
        this.bytes += payload.length;
        const answer = to.sync.onMessage(0, name, payload, stream ? 'request' : 'datagram');
        if (answer !== undefined) {
          this.bytes += answer.length;
          this.replicas.get(name)?.sync.onMessage(0, addr, answer, 'reply');
        }
      },
    };
    const replica = { store, sync: new KvSync(store, port) };
    this.replicas.set(name, replica);
    return replica;
  }

  blocked(a: string, b: string): boolean {
    return this.cut.has(a) !== this.cut.has(b);
  }
}

const snapshot = (s: KvStore): string => JSON.stringify(s.records().map((r) => ({ ...r, value: [...r.value], flags: String(r.flags) })).sort((a, b) => (a.key < b.key ? -1 : 1)));

describe('the key-value replica', () => {
  test('last writer wins by clock, then writer name; a delete is a tombstone that orders the same way', () => {
    const a = new KvStore('a');
    const first = a.put(1_000, 'k', bytes('one'));
    const second = a.put(1_000, 'k', bytes('two'));
    expect(laterThan(second, first)).toBe(true);
    expect(second.counter).toBe(first.counter + 1);
    const b = new KvStore('b');
    expect(b.merge(0, second)).toBe(true);
    expect(b.merge(0, first)).toBe(false);
    expect(new TextDecoder().decode(b.get('k')?.value)).toBe('two');
    // Same clock, other writer: the larger name wins everywhere.
    const fromB = { ...second, writer: 'b', value: bytes('from b') };
    expect(a.merge(0, fromB)).toBe(true);
    const [tomb] = a.delete(2_000, 'k');
    expect(b.merge(0, tomb as KvRecord)).toBe(true);
    expect(b.get('k')).toBeUndefined();
    expect(b.merge(0, fromB)).toBe(false);
    // A writer whose wall clock is behind still writes after what it heard.
    const late = b.put(500, 'k', bytes('again'));
    expect(laterThan(late, tomb as KvRecord)).toBe(true);
  });

  test('limits: keys up to 512 bytes, values up to 512 KiB, flags a uint64', () => {
    const s = new KvStore('a');
    expect(() => s.put(0, 'x'.repeat(513), bytes(''))).toThrow(/key is 513 bytes, limit is 512/);
    expect(() => s.put(0, '', bytes(''))).toThrow(/key: must be a non-empty string/);
    expect(() => s.put(0, 'k', new Uint8Array(512 * 1024 + 1))).toThrow(/value is 524289 bytes, limit is 524288/);
    expect(() => s.put(0, 'k', bytes(''), -1)).toThrow(/flags/);
    expect(s.put(0, 'k', bytes(''), (1n << 64n) - 1n).flags).toBe((1n << 64n) - 1n);
    expect(() => s.put(0, 'k', bytes(''), 1n << 64n)).toThrow(/flags/);
  });

  propTest.prop([fc.array(fc.record({ key: fc.constantFrom('a', 'b', 'c'), wall: fc.nat(5), counter: fc.nat(2), writer: fc.constantFrom('x', 'y'), deleted: fc.boolean() }), { maxLength: 20 }), fc.integer()])(
    'merging commutes: any order of the same registers ends in the same map',
    (raw, seed) => {
      const recs: KvRecord[] = raw.map((r) => ({ ...r, value: bytes(`${r.writer}${r.wall}${r.counter}`), flags: 0n }));
      const shuffled = fc.sample(fc.shuffledSubarray(recs, { minLength: recs.length, maxLength: recs.length }), { seed, numRuns: 1 })[0] as KvRecord[];
      const one = new KvStore('p');
      const two = new KvStore('q');
      for (const r of recs) one.merge(0, r);
      for (const r of shuffled) two.merge(0, r);
      expect(snapshot(two)).toBe(snapshot(one));
    },
  );
});

describe('sync between replicas', () => {
  test('two replicas holding 100,000 equal keys exchange 9 bytes in a round (2 KiB in a full one); one key apart, little more than that key', () => {
    const bus = new Bus();
    const a = bus.add('a');
    const b = bus.add('b');
    let data = 0;
    for (let i = 0; i < 100_000; i++) {
      const r = a.store.put(1_000 + i, `service/config/${i}`, bytes(`value number ${i}`));
      b.store.merge(0, r);
      data += r.key.length + r.value.length;
    }
    bus.bytes = 0;
    a.sync.probe('b');
    expect(bus.bytes).toBeLessThan(16);
    a.sync.syncWith('b');
    expect(bus.bytes).toBeLessThan(0.01 * data);
    expect(bus.bytes).toBeLessThan(2_200);
    b.store.put(500_000, 'service/config/77', bytes('changed'));
    bus.bytes = 0;
    a.sync.probe('b');
    expect(new TextDecoder().decode(a.store.get('service/config/77')?.value)).toBe('changed');
    expect(snapshot(a.store)).toBe(snapshot(b.store));
    expect(bus.bytes).toBeLessThan(8 * 1024);
  });

  test('10,000 keys that differ after a partition converge in one round each way', () => {
    const bus = new Bus();
    const a = bus.add('a');
    const b = bus.add('b');
    for (let i = 0; i < 5_000; i++) a.store.put(i, `a/${i}`, bytes(`${i}`));
    for (let i = 0; i < 5_000; i++) b.store.put(i, `b/${i}`, bytes(`${i}`));
    a.sync.syncWith('b');
    expect(a.store.size).toBe(10_000);
    expect(b.store.size).toBe(10_000);
    expect(snapshot(a.store)).toBe(snapshot(b.store));
  });

  test('a large value is announced and pulled, not gossiped whole', () => {
    const bus = new Bus();
    const a = bus.add('a');
    const b = bus.add('b');
    const c = bus.add('c');
    a.sync.spread([a.store.put(1, 'big', new Uint8Array(200_000).fill(1))]);
    expect(b.store.get('big')?.value.length).toBe(200_000);
    expect(c.store.get('big')?.value.length).toBe(200_000);
    expect(b.sync.stats.pulled + c.sync.stats.pulled).toBeGreaterThanOrEqual(2);
  });

  test('hostile input is dropped and counted, never thrown', () => {
    const bus = new Bus();
    const a = bus.add('a');
    for (const junk of [new Uint8Array([0xc1]), bytes('not msgpack'), new Uint8Array([0x92, 0x01, 0x91]), new Uint8Array([0x93, 0x0a, 0xc4, 0x01, 0x00, 0x00])]) {
      expect(a.sync.onMessage(0, 'x', junk, 'request')).toBeUndefined();
    }
    expect(a.sync.stats.dropped).toBe(4);
    expect(a.store.size).toBe(0);
  });

  propTest.prop([
    fc.array(fc.record({ at: fc.nat(2), op: fc.constantFrom('put', 'delete'), key: fc.constantFrom('k1', 'k2', 'k3', 'dir/k4'), value: fc.string({ maxLength: 5 }), cut: fc.boolean() }), { minLength: 1, maxLength: 30 }),
    fc.integer({ min: 0, max: 2 ** 31 - 1 }),
  ])('random puts, deletes, losses and partitions: once quiet, every replica holds the same map and no deleted key is back', (ops, seed) => {
    let n = seed;
    const bus = new Bus(() => {
      n = (n * 1_103_515_245 + 12_345) % 2 ** 31;
      return n % 3 === 0; // a third of gossip lost
    });
    const names = ['r0', 'r1', 'r2'];
    for (const name of names) bus.add(name);
    const latest = new Map<string, KvRecord>();
    let wall = 1_000;
    for (const o of ops) {
      bus.cut = o.cut ? new Set(['r2']) : new Set();
      const r = bus.replicas.get(names[o.at] as string) as { store: KvStore; sync: KvSync };
      const written = o.op === 'put' ? [r.store.put(wall++, o.key, bytes(o.value))] : r.store.delete(wall++, o.key);
      r.sync.spread(written);
      for (const w of written) if (!latest.has(w.key) || laterThan(w, latest.get(w.key) as KvRecord)) latest.set(w.key, w);
    }
    bus.cut = new Set();
    for (let round = 0; round < 3; round++) for (const a of names) for (const b of names) if (a !== b) bus.replicas.get(a)?.sync.syncWith(b);
    const maps = names.map((name) => snapshot((bus.replicas.get(name) as { store: KvStore }).store));
    expect(maps[1]).toBe(maps[0]);
    expect(maps[2]).toBe(maps[0]);
    const store = (bus.replicas.get('r0') as { store: KvStore }).store;
    for (const [key, w] of latest) expect(store.get(key) === undefined).toBe(w.deleted);
  });
});
