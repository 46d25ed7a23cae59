/**
 * Member records (the registry's bytes) in the core: versions within an incarnation, inline
 * records on gossip, large ones announced by digest and pulled over the stream path.
 */
import { describe, expect, test } from 'vitest';
import { Simulation } from '../sim/engine.js';
import { Membership } from '../src/core/membership.js';
import { seededRng } from '../src/core/rng.js';
import { decodePacket, encodePacket, MessageType, recordDigest, withRecord } from '../src/core/wire.js';
import { LIMITS } from './arbitraries.js';

function filled(size: number, value: number): Uint8Array {
  return new Uint8Array(size).fill(value);
}

function holds(h: Simulation, observer: string, subject: string, record: Uint8Array): boolean {
  const m = h.node(observer).core.member(subject)?.record;
  return m !== undefined && m.length === record.length && m.every((b, i) => b === record[i]);
}

function streamBytesIn(h: Simulation): number {
  return h.liveNodes().reduce((sum, n) => sum + n.counters.bytesIn, 0);
}

describe('member records', () => {
  test('a small record update spreads inline under the next version, same incarnation (seed 27)', () => {
    const h = new Simulation({ seed: 27 });
    h.startCluster(4);
    h.runFor(3_000);
    const before = h.node('n3').core.incarnation;
    h.node('n3').core.setLocalRecord(h.nowMs, Uint8Array.from([7, 7]));
    expect(h.runUntilTrue(() => ['n0', 'n1', 'n2'].every((o) => holds(h, o, 'n3', Uint8Array.from([7, 7]))), 3_000)).toBe(true);
    for (const o of ['n0', 'n1', 'n2']) {
      expect(h.node(o).core.member('n3')).toMatchObject({ version: 1, incarnation: before });
      expect(h.eventsOf(o).some((e) => e.type === 'updated' && e.member.name === 'n3')).toBe(true);
    }
    expect(h.node('n0').core.stats.streamsOut).toBeLessThan(10); // no pulls for inline records
  });

  test('a 64 KiB record is announced by digest and pulled once per node (seed 40)', () => {
    const h = new Simulation({ seed: 40 });
    const names = Array.from({ length: 20 }, (_, i) => `n${i}`);
    h.bootstrap(names);
    h.runFor(2_000);
    const big = filled(65_536, 9);
    const inBefore = streamBytesIn(h);
    h.node('n0').core.setLocalRecord(h.nowMs, big);
    expect(h.runUntilTrue(() => names.every((o) => o === 'n0' || holds(h, o, 'n0', big)), 10_000)).toBe(true);
    const moved = streamBytesIn(h) - inBefore;
    const ideal = 19 * 65_536;
    expect(moved).toBeGreaterThanOrEqual(ideal);
    expect(moved).toBeLessThan(1.3 * ideal);
    // The pulls spread out: the owner does not serve everyone.
    const served = h.node('n0').counters.bytesOut;
    expect(served).toBeLessThan(0.8 * ideal);
  });

  test('a refutation re-stamps a large record without anyone pulling it again (seed 41)', () => {
    const h = new Simulation({ seed: 41 });
    h.startCluster(6);
    h.runFor(5_000);
    const big = filled(4_000, 3);
    h.node('n2').core.setLocalRecord(h.nowMs, big);
    // At 6 members a broadcast gets 4 sends: about 1 run in 200 misses a member, which push-pull heals within 30 s.
    expect(h.runUntilTrue(() => h.liveNodes().every((n) => n.name === 'n2' || holds(h, n.name, 'n2', big)), 40_000), 'seed 41').toBe(true);
    h.runFor(2_000);
    const streams = h.liveNodes().reduce((s, n) => s + n.core.stats.streamsOut, 0);
    const incarnation = h.node('n2').core.incarnation;
    h.pause('n2', 4_000); // long enough to be suspected and refute
    h.runFor(15_000);
    expect(h.node('n2').core.incarnation).toBeGreaterThan(incarnation);
    for (const n of h.liveNodes()) {
      if (n.name !== 'n2') expect(n.core.member('n2')?.incarnation).toBe(h.node('n2').core.incarnation);
    }
    // Push-pulls still run; no record pulls were added (each is a small stream, so count frames by type).
    const pulls = h.liveNodes().reduce((s, n) => s + n.core.stats.streamsOut, 0) - streams;
    expect(pulls).toBeLessThan(12);
  });

  test('an offer from a member that never answers falls back to the owner', () => {
    const core = new Membership({ name: 'a', addr: 'a', rng: seededRng(3), nowMs: 0 });
    const big = filled(2_000, 5);
    // 'relay' announces owner 'o' at version 4 by digest alone, then goes silent.
    const offer = { type: MessageType.Alive, node: 'o', incarnation: 0, addr: 'o', record: new Uint8Array(0), version: 4, digest: recordDigest(big), recordBytes: big.length } as const;
    core.handleDatagram(0, 'relay', encodePacket([offer]));
    const pullsTo = (): string[] => {
      const out: string[] = [];
      for (let t = core.pollTransmit(); t !== undefined; t = core.pollTransmit()) {
        const d = decodePacket(t.bytes, { ...LIMITS, membersMax: 100 });
        if (t.stream && d.ok && d.messages.some((m) => m.type === MessageType.RecordPull)) out.push(t.addr);
      }
      return out;
    };
    expect(pullsTo()).toEqual(['relay']);
    core.handleTimeout(2_500);
    expect(pullsTo()).toEqual(['o']);
    expect(core.member('o')?.record.length).toBe(0);
    // The owner answers over the stream: the record lands and is checked against its digest.
    core.handleStream(2_600, 'o', encodePacket([{ ...offer, record: big }]));
    expect(core.member('o')?.record).toEqual(big);
    expect(core.member('o')?.version).toBe(4);
  });

  test('a record that does not match its digest is dropped and counted', () => {
    const core = new Membership({ name: 'a', addr: 'a', rng: seededRng(3), nowMs: 0 });
    const lie = { type: MessageType.Alive, node: 'o', incarnation: 0, addr: 'o', ...withRecord(Uint8Array.from([1])), record: Uint8Array.from([2]) } as const;
    core.handleDatagram(0, 'x', encodePacket([lie]));
    expect(core.member('o')).toBeUndefined();
    expect(core.stats.dropped['bad-digest']).toBe(1);
    // An empty record under some other digest is refused by the decoder.
    const odd = { type: MessageType.Alive, node: 'o', incarnation: 0, addr: 'o', ...withRecord(), digest: Uint8Array.from([1, 2, 3, 4, 5, 6, 7, 8]) } as const;
    core.handleDatagram(1, 'x', encodePacket([odd]));
    expect(core.member('o')).toBeUndefined();
    expect(core.stats.dropped['bad-field']).toBe(1);
  });

  test('an older version never overwrites a newer one; the owner ignores its own old echoes', () => {
    const core = new Membership({ name: 'a', addr: 'a', rng: seededRng(3), nowMs: 0 });
    const v = (version: number, byte: number) => ({ type: MessageType.Alive, node: 'o', incarnation: 2, addr: 'o', ...withRecord(Uint8Array.from([byte]), version) }) as const;
    core.handleDatagram(0, 'x', encodePacket([v(5, 5)]));
    core.handleDatagram(1, 'x', encodePacket([v(3, 3)]));
    expect(core.member('o')).toMatchObject({ version: 5, record: Uint8Array.from([5]) });
    core.setLocalRecord(2, Uint8Array.from([1]));
    core.setLocalRecord(3, Uint8Array.from([2]));
    const inc = core.incarnation;
    core.handleDatagram(4, 'x', encodePacket([{ type: MessageType.Alive, node: 'a', incarnation: inc, addr: 'a', ...withRecord(Uint8Array.from([1]), 1) }]));
    expect(core.incarnation).toBe(inc);
  });

  test('oversized records are a typed error at the owner', () => {
    const core = new Membership({ name: 'a', addr: 'a', rng: seededRng(3), nowMs: 0, config: { recordBytesMax: 1_000 } });
    expect(() => core.setLocalRecord(0, new Uint8Array(1_001))).toThrowError(expect.objectContaining({ code: 'grapevine.oversized' }));
  });
});
