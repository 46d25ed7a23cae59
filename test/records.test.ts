/**
 * Member records (the registry's bytes) in the core: versions within an incarnation, inline
 * records on gossip, large ones announced by digest and pulled over the stream path. Then the
 * registry's encoding of them (src/registry/record.ts) across versions: older and newer members
 * read each other's records, and hostile ones are refused with a reason.
 */
import { test as propTest } from '@fast-check/vitest';
import fc from 'fast-check';
import { Packr } from 'msgpackr/pack';
import { describe, expect, test } from 'vitest';
import { Simulation } from '../sim/engine.js';
import { Membership } from '../src/core/membership.js';
import { seededRng } from '../src/core/rng.js';
import { scanValue } from '../src/core/msgpack-scan.js';
import { decodePacket, encodePacket, isPrintable, MessageType, recordDigest, withRecord } from '../src/core/wire.js';
import { CHECK_OUTPUT_BYTES_MAX, type CheckRecord, decodeRecord, encodeRecord, HEALTH, type NodeRecord, RECORD_LIMITS, type ServiceRecord } from '../src/registry/record.js';
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

// ---------------------------------------------------------------- the registry's record format

/** Packs a hand-built tuple as record.ts packs records. */
const packr = new Packr({ useRecords: false, variableMapSize: true });
function pack(tuple: unknown[]): Uint8Array {
  return Uint8Array.from(packr.pack(tuple));
}
/** encodeRecord's bytes as a plain Uint8Array (msgpackr hands back a Buffer), to compare with pack's. */
function encoded(record: Parameters<typeof encodeRecord>[0]): Uint8Array {
  return Uint8Array.from(encodeRecord(record));
}

/** [id, name, address, port, tags, meta, weight, health]: a service as members before checks wrote it (health 1 is warning). */
const SERVICE_8 = ['b1', 'billing', '10.0.0.9', 8080, ['v2'], ['zone', 'eu'], 2, 1];
/** A check as written: [n, id, name, type, status, notes, intervalMs, timeoutMs, k, k output chunks, later fields] (status 0 is passing). */
function flatCheck(id: string, output: string, { intervalMs = 10_000, later = [] as unknown[], chunkBytes = 1_024 } = {}): unknown[] {
  const chunks: string[] = [];
  for (let rest = output; rest !== ''; ) {
    let piece = rest;
    while (Buffer.byteLength(piece) > chunkBytes) piece = piece.slice(0, -1);
    chunks.push(piece);
    rest = rest.slice(piece.length);
  }
  const items = [id, 'alive', 'http', 0, 'probe', intervalMs, 2_000, chunks.length, ...chunks, ...later];
  return [items.length, ...items];
}
const OUTPUT = 'HTTP GET http://10.0.0.9:8080/health: 200 OK Output: ok';
const CHECK_FLAT = flatCheck('c1', OUTPUT);

/** SERVICE_8 as decoded: the fields added later hold their defaults. */
const BILLING: ServiceRecord = {
  id: 'b1', name: 'billing', address: '10.0.0.9', port: 8080, tags: ['v2'], meta: { zone: 'eu' }, weight: 2, health: 'warning',
  checks: [], taggedAddresses: {}, warningWeight: 1,
};
const ALIVE: CheckRecord = { id: 'c1', name: 'alive', type: 'http', status: 'passing', output: OUTPUT, notes: 'probe', intervalMs: 10_000, timeoutMs: 2_000 };

/** A one-service record tuple with a tag, a tagged address and `checks` checks: the hostile cases below change one of them. */
function tupleWith({ tag = 'v2', output = 'ok', intervalMs = 10_000, checks = 1, taggedPort = 443 } = {}): unknown[] {
  const flat = Array.from({ length: checks }, (_, n) => flatCheck(`c${n}`, output, { intervalMs })).flat();
  const service = ['b1', 'billing', '', 80, [tag], [], 1, 0, flat, ['wan', '203.0.113.9', taggedPort]];
  return [1, [], [service]];
}

describe('registry record format across versions', () => {
  test('a record in the previous format (8-field services, no node checks) decodes with the new fields at their defaults', () => {
    expect(decodeRecord(pack([1, ['rack', 'r1'], [SERVICE_8]]))).toEqual({ meta: { rack: 'r1' }, services: [BILLING], checks: [], keys: [] });
  });

  test('a record from a future version, with trailing fields on the record, a service and a check, decodes without them', () => {
    const futureCheck = flatCheck('c1', OUTPUT, { later: ['a later check field', 7] });
    // Fields 9 to 12 as this version knows them (checks, tagged addresses, warning weight, no external node), then two it does not.
    const futureService = [...SERVICE_8, futureCheck, ['wan', '203.0.113.9', 443], 0.5, [], 'a later service field', ['x', 'y']];
    // Record fields 4 and 5 as this version knows them (node checks, key fingerprints), then two it does not.
    const bytes = pack([1, ['rack', 'r1'], [futureService], flatCheck('c1', OUTPUT, { later: [null] }), ['0123456789abcdef'], 'a later record field', [[1, 2]]]);
    expect(decodeRecord(bytes)).toEqual({
      meta: { rack: 'r1' },
      services: [{ ...BILLING, checks: [ALIVE], taggedAddresses: { wan: { address: '203.0.113.9', port: 443 } }, warningWeight: 0.5 }],
      checks: [ALIVE],
      keys: ['0123456789abcdef'],
    });
  });

  test('new fields at their defaults are left off: the bytes are the previous format\'s, so old and new members agree', () => {
    const previous = pack([1, ['rack', 'r1'], [SERVICE_8]]);
    expect(encoded({ meta: { rack: 'r1' }, services: [BILLING] })).toEqual(previous);
    expect(encoded({ meta: { rack: 'r1' }, services: [BILLING], checks: [] })).toEqual(previous);
    // A field past its default brings only the fields before it, each at its default.
    expect(encoded({ meta: {}, services: [{ ...BILLING, warningWeight: 3 }] })).toEqual(pack([1, [], [[...SERVICE_8, [], [], 3]]]));
    expect(encoded({ meta: {}, services: [{ ...BILLING, taggedAddresses: { wan: { address: '203.0.113.9', port: 443 } } }] }))
      .toEqual(pack([1, [], [[...SERVICE_8, [], ['wan', '203.0.113.9', 443]]]]));
    expect(encoded({ meta: {}, services: [{ ...BILLING, checks: [ALIVE] }] })).toEqual(pack([1, [], [[...SERVICE_8, CHECK_FLAT]]]));
    expect(encoded({ meta: {}, services: [], checks: [ALIVE] })).toEqual(pack([1, [], [], CHECK_FLAT]));
    expect(encoded({ meta: {}, services: [], keys: ['0123456789abcdef'] })).toEqual(pack([1, [], [], [], ['0123456789abcdef']]));
  });

  test('whatever this version adds, a member of the first format scans it: four levels deep, strings of 1 KiB at most', () => {
    const big: CheckRecord = { ...ALIVE, output: 'é'.repeat(CHECK_OUTPUT_BYTES_MAX / 2) };
    const checks = Array.from({ length: RECORD_LIMITS.checksMax }, (_, n) => ({ ...big, id: `c${n}` }));
    const bytes = encodeRecord({
      meta: { rack: 'r1' }, checks: [{ ...big, id: 'node-check' }],
      services: [{ ...BILLING, checks, taggedAddresses: { wan: { address: '203.0.113.9', port: 443 } }, warningWeight: 3, external: { node: 'db-node', address: '10.0.0.7', meta: { 'external-node': 'true' } } }],
    });
    // The bounds decodeRecord has scanned with since the format's first version.
    expect(scanValue(bytes, 0, { depthMax: 4, arrayLengthMax: 4_096, stringBytesMax: 1_024, binaryBytesMax: 0 })).toMatchObject({ ok: true, end: bytes.length });
    const decoded = decodeRecord(bytes) as NodeRecord;
    expect(decoded.services[0]?.checks.map((c) => c.output)).toEqual(checks.map((c) => c.output));
    expect(decoded.services[0]?.external).toEqual({ node: 'db-node', address: '10.0.0.7', meta: { 'external-node': 'true' } });
  });

  // Each at its limit decodes (multi-byte characters where bytes, not characters, are counted); one past it is refused.
  test.each([
    ['a check output over 4096 bytes', { output: 'é'.repeat(CHECK_OUTPUT_BYTES_MAX / 2) }, { output: `${'é'.repeat(CHECK_OUTPUT_BYTES_MAX / 2)}x` }, /check output over the limit/],
    ['a tag over 1024 bytes', { tag: 'é'.repeat(RECORD_LIMITS.stringBytesMax / 2) }, { tag: `${'é'.repeat(RECORD_LIMITS.stringBytesMax / 2)}x` }, /too-long/],
    ['a tagged-address port of 70000', { taggedPort: 65_535 }, { taggedPort: 70_000 }, /bad tagged address/],
    ['17 checks', { checks: RECORD_LIMITS.checksMax }, { checks: RECORD_LIMITS.checksMax + 1 }, /more checks than the limit/],
    ['a non-integer intervalMs', { intervalMs: 86_400_000 }, { intervalMs: 1_000.5 }, /bad check/],
  ])('hostile: %s is refused with a reason, not a throw', (_what, atLimit, over, reason) => {
    expect(typeof decodeRecord(pack(tupleWith(atLimit)))).toBe('object');
    let refused: unknown;
    expect(() => { refused = decodeRecord(pack(tupleWith(over))); }).not.toThrow();
    expect(refused).toEqual(expect.stringMatching(reason));
  });

  // Valid records within every limit: printable non-empty strings where record.ts requires names, any string elsewhere.
  const name = fc.oneof(
    { arbitrary: fc.string({ minLength: 1, maxLength: 24, unit: 'grapheme' }).filter(isPrintable), weight: 9 },
    { arbitrary: fc.constant('é'.repeat(RECORD_LIMITS.stringBytesMax / 2)), weight: 1 },
  );
  // Any code points (a code point is at most 4 UTF-8 bytes, so max / 4 of them fit), and exactly `max` bytes.
  const text = (max: number): fc.Arbitrary<string> => fc.oneof(
    { arbitrary: fc.string({ maxLength: 24, unit: 'binary' }), weight: 8 },
    { arbitrary: fc.string({ maxLength: max / 4, unit: 'binary' }), weight: 1 },
    { arbitrary: fc.constant('é'.repeat(max / 2)), weight: 1 },
  );
  const short = text(RECORD_LIMITS.stringBytesMax);
  const port = fc.integer({ min: 0, max: 65_535 });
  const ms = fc.integer({ min: 0, max: 86_400_000 });
  const weight = fc.oneof(fc.integer({ min: 0, max: 1_000_000 }), fc.double({ min: 0, max: 1_000_000, noNaN: true }));
  const check: fc.Arbitrary<CheckRecord> = fc.record({
    id: name, name: short, type: short, status: fc.constantFrom(...HEALTH), output: text(CHECK_OUTPUT_BYTES_MAX), notes: short, intervalMs: ms, timeoutMs: ms,
  });
  const checks = fc.array(check, { maxLength: RECORD_LIMITS.checksMax });
  const service: fc.Arbitrary<ServiceRecord> = fc.record({
    id: name, name, address: short, port,
    tags: fc.array(short, { maxLength: RECORD_LIMITS.tagsMax }),
    meta: fc.dictionary(short, short, { maxKeys: RECORD_LIMITS.metaEntriesMax }),
    weight, health: fc.constantFrom(...HEALTH), checks,
    taggedAddresses: fc.dictionary(name, fc.record({ address: short, port }), { maxKeys: RECORD_LIMITS.taggedAddressesMax }),
    // Often the default, so records that leave fields off are drawn too.
    warningWeight: fc.oneof(fc.constant(1), weight),
    external: fc.option(fc.record({ node: name, address: short.filter((a) => a !== ''), meta: fc.dictionary(short, short, { maxKeys: RECORD_LIMITS.metaEntriesMax }) }), { nil: undefined }),
  });
  const record: fc.Arbitrary<NodeRecord> = fc.record({
    meta: fc.dictionary(short, short, { maxKeys: RECORD_LIMITS.metaEntriesMax }),
    services: fc.uniqueArray(service, { selector: (s) => s.id, maxLength: 4 }),
    checks,
    keys: fc.array(fc.stringMatching(/^[0-9a-f]{16}$/), { maxLength: RECORD_LIMITS.keysMax }),
  });

  propTest.prop([record])('encodeRecord then decodeRecord is the identity', (r) => {
    expect(decodeRecord(encodeRecord(r))).toEqual(r);
  });
});
