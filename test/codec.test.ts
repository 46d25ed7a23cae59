import { test as propTest } from '@fast-check/vitest';
import fc from 'fast-check';
import { pack } from 'msgpackr';
import { describe, expect, test } from 'vitest';
import {
  buildPacket, decodePacket, encodeMessage, encodePacket, encodePushPullMembers, HEADER_BYTES, isPrintable, MessageType, pushPullPacket,
  type DecodeErrorReason, type Message, withRecord,
} from '../src/core/wire.js';
import { LIMITS, message, normalize } from './arbitraries.js';

const REASONS: DecodeErrorReason[] = ['bad-header', 'empty', 'bad-field', 'truncated', 'too-deep', 'too-long', 'unsupported-type'];

function header(): number[] {
  return [0x47, 0x56, 1];
}

function decodeOk(bytes: Uint8Array): Message[] {
  const r = decodePacket(bytes, LIMITS);
  if (!r.ok) throw new Error(`decode failed: ${JSON.stringify(r.error)}`);
  return r.messages;
}

function reasonOf(bytes: number[] | Uint8Array): DecodeErrorReason | 'ok' {
  const r = decodePacket(Uint8Array.from(bytes), LIMITS);
  return r.ok ? 'ok' : r.error.reason;
}

describe('codec round trip', () => {
  propTest.prop([message])('every message type decodes to what was encoded', (m) => {
    expect(normalize(decodeOk(encodePacket([m])))).toEqual([normalize(m)]);
  });

  propTest.prop([message.filter((m) => m.type === MessageType.PushPull)])('a push-pull framed around its kept member list is the same bytes as one encoded whole', (m) => {
    if (m.type !== MessageType.PushPull) return;
    expect(pushPullPacket(m.join, m.reply, encodePushPullMembers(m.members))).toEqual(encodePacket([m]));
  });

  propTest.prop([fc.array(message, { minLength: 1, maxLength: 8 })])('compound packets keep every message in order', (ms) => {
    expect(normalize(decodeOk(encodePacket(ms)))).toEqual(ms.map(normalize));
  });

  test('the header carries magic and protocol version', () => {
    const bytes = encodePacket([{ type: MessageType.Ack, seq: 7 }]);
    expect(Array.from(bytes.subarray(0, HEADER_BYTES))).toEqual(header());
  });

  test('message type numbers are the protocol and never change', () => {
    // Append-only: a renumbering would break mixed-version clusters, so pin them.
    expect(MessageType).toEqual({ Ping: 1, PingReq: 2, Ack: 3, Nack: 4, Suspect: 5, Alive: 6, Dead: 7, Left: 8, PushPull: 9, RecordPull: 10, KeyringOp: 11, App: 12 });
  });

  test('buildPacket concatenates pre-encoded bodies', () => {
    const a = encodeMessage({ type: MessageType.Ack, seq: 1 });
    const b = encodeMessage({ type: MessageType.Nack, seq: 2 });
    expect(decodeOk(buildPacket([a, b]))).toEqual([{ type: MessageType.Ack, seq: 1 }, { type: MessageType.Nack, seq: 2 }]);
  });
});

describe('decoder on hostile input', () => {
  propTest.prop([fc.uint8Array({ maxLength: 2_000 })])('arbitrary bytes: a value or a typed error, never a throw', (bytes) => {
    const r = decodePacket(bytes, LIMITS);
    if (!r.ok) expect(REASONS).toContain(r.error.reason);
  });

  propTest.prop([fc.uint8Array({ maxLength: 600 })])('arbitrary bytes behind a valid header: never a throw', (body) => {
    const r = decodePacket(Uint8Array.from([...header(), ...body]), LIMITS);
    if (!r.ok) expect(REASONS).toContain(r.error.reason);
  });

  propTest.prop([
    fc.array(message, { minLength: 1, maxLength: 4 }),
    fc.array(fc.tuple(fc.nat(), fc.integer({ min: 0, max: 255 }), fc.constantFrom('flip', 'cut', 'insert')), { minLength: 1, maxLength: 8 }),
  ])('mutated valid packets: a value or a typed error, never a throw', (ms, mutations) => {
    const bytes = Array.from(encodePacket(ms));
    for (const [at, value, op] of mutations) {
      const i = at % (bytes.length + 1);
      if (op === 'flip' && i < bytes.length) bytes[i] = value;
      else if (op === 'cut') bytes.length = Math.max(0, i);
      else bytes.splice(i, 0, value);
    }
    const r = decodePacket(Uint8Array.from(bytes), LIMITS);
    if (r.ok) for (const m of r.messages) expect(typeof m.type).toBe('number');
    else expect(REASONS).toContain(r.error.reason);
  });

  test('wrong magic, missing version and empty packets are rejected', () => {
    expect(reasonOf([])).toBe('bad-header');
    expect(reasonOf([0x47, 0x57, 1, 0x91, 3])).toBe('bad-header');
    expect(reasonOf([0x47, 0x56, 0, 0x91, 3])).toBe('bad-header');
    expect(reasonOf(header())).toBe('empty');
  });

  test('nesting deeper than the schema is refused without recursion', () => {
    // 60,000 nested one-element arrays would overflow a recursive decoder's stack.
    expect(reasonOf([...header(), ...new Array<number>(60_000).fill(0x91), 0x01])).toBe('too-deep');
  });

  test('declared lengths beyond the input or the limits are refused before allocating', () => {
    expect(reasonOf([...header(), 0xdd, 0xff, 0xff, 0xff, 0xff])).toBe('too-long'); // array32 of 4 billion
    expect(reasonOf([...header(), 0x93, 0x03, 0x01])).toBe('truncated');
    expect(reasonOf([...header(), 0xdb, 0x7f, 0xff, 0xff, 0xff, 0x61])).toBe('too-long'); // str32 of 2 GiB
    expect(reasonOf([...header(), 0xc6, 0x00, 0x01, 0x00, 0x00])).toBe('too-long'); // bin32 of 64 KiB > meta limit
    expect(reasonOf([...header(), 0xdc, 0x00, 0x50, 0x01])).toBe('truncated'); // 80 elements, 1 byte present
  });

  test('maps and extension types (msgpackr records, dates, structures) are refused', () => {
    expect(reasonOf([...header(), 0x81, 0xa1, 0x61, 0x01])).toBe('unsupported-type');
    expect(reasonOf([...header(), 0xd6, 0xff, 0, 0, 0, 0])).toBe('unsupported-type'); // timestamp ext
    expect(reasonOf([...header(), 0xd4, 0x72, 0x00])).toBe('unsupported-type'); // msgpackr record definition
    expect(reasonOf([...header(), 0xc1])).toBe('unsupported-type');
  });

  test('fields of the wrong type or out of range are refused', () => {
    const bad = (tuple: unknown[]): DecodeErrorReason | 'ok' => reasonOf([...header(), ...pack(tuple)]);
    expect(bad([MessageType.Ping, -1, 'a'])).toBe('bad-field');
    expect(bad([MessageType.Ping, 2 ** 32, 'a'])).toBe('bad-field');
    expect(bad([MessageType.Ping, 1.5, 'a'])).toBe('bad-field');
    expect(bad([MessageType.Ping, 1, ''])).toBe('bad-field');
    expect(bad([MessageType.Ping, 1])).toBe('bad-field');
    expect(bad([MessageType.Alive, 'n', 1, 'a:1', 'not bytes'])).toBe('bad-field');
    expect(['too-long', 'bad-field']).toContain(bad([MessageType.Suspect, 'x'.repeat(129), 1, 'a']));
    // Names are limited in UTF-8 bytes, not characters: 33 'é' are 66 bytes.
    const accented = decodePacket(Uint8Array.from([...header(), ...pack([MessageType.Suspect, 'é'.repeat(33), 1, 'a'])]), {
      ...LIMITS, nameBytesMax: 64,
    });
    expect(!accented.ok && accented.error.reason).toBe('bad-field');
    expect(bad([MessageType.PushPull, true, false, [['n', 'a:1', new Uint8Array(0), 1, 1, 9]]])).toBe('bad-field');
    expect(bad([MessageType.PushPull, true, false, 'nope'])).toBe('bad-field');
    const key = new Uint8Array(32);
    expect(bad([MessageType.KeyringOp, 1, key, 1, 'a'])).toBe('ok');
    expect(bad([MessageType.KeyringOp, 4, key, 1, 'a'])).toBe('bad-field');
    expect(bad([MessageType.KeyringOp, 1, key.subarray(1), 1, 'a'])).toBe('bad-field');
    expect(bad([MessageType.KeyringOp, 1, key, -1, 'a'])).toBe('bad-field');
    expect(bad([MessageType.KeyringOp, 1, key, 1, ''])).toBe('bad-field');
    expect(bad(['1', 1])).toBe('bad-field');
  });

  test('unknown message types from newer peers are skipped, the rest still decode', () => {
    const bytes = Uint8Array.from([...header(), ...pack([200, 'future']), ...encodeMessage({ type: MessageType.Ack, seq: 3 })]);
    const r = decodePacket(bytes, LIMITS);
    expect(r.ok && r.unknownTypes).toBe(1);
    expect(r.ok && r.messages).toEqual([{ type: MessageType.Ack, seq: 3 }]);
  });

  test('extra trailing fields from newer peers are ignored', () => {
    const bytes = Uint8Array.from([...header(), ...pack([MessageType.Ack, 9, 'extra', [1, 2]])]);
    expect(decodeOk(bytes)).toEqual([{ type: MessageType.Ack, seq: 9 }]);
  });

  test('push-pull member count is bounded by the limit', () => {
    const members = Array.from({ length: 5 }, (_, i) => [`n${i}`, 'a:1', new Uint8Array(0), 0, 0, 0]);
    const bytes = Uint8Array.from([...header(), ...pack([MessageType.PushPull, false, false, members])]);
    const r = decodePacket(bytes, { ...LIMITS, membersMax: 4 });
    expect(r.ok).toBe(false);
  });

  test('decoded blobs do not alias the input buffer', () => {
    const bytes = encodePacket([{ type: MessageType.Alive, node: 'n', incarnation: 1, addr: 'a:1', ...withRecord(Uint8Array.from([1, 2, 3])) }]);
    const [m] = decodeOk(bytes);
    bytes.fill(0);
    expect(m?.type === MessageType.Alive && Array.from(m.record)).toEqual([1, 2, 3]);
  });
});

describe('names from peers are printable (issue 11: mutated alives left U+FFFD names in lookups)', () => {
  const alive = (node: string): Uint8Array => encodePacket([{ type: MessageType.Alive, node, incarnation: 1, addr: 'a:1', ...withRecord() }]);
  test.each(['bad\u0000name', 'evil\u202Egnp.exe', 'mojibake\uFFFD', 'line\u2028break', 'tab\there', 'del\u007f', '\u200B'])('%j is refused', (node) => {
    expect(reasonOf(alive(node))).toBe('bad-field');
  });
  test.each(['web-1', 'café', '服务-2', 'a b', 'n0'])('%j is accepted', (node) => {
    expect(reasonOf(alive(node))).toBe('ok');
  });
  test('isPrintable agrees on its ASCII fast path and Unicode path', () => {
    expect(isPrintable('plain-ascii_1.2')).toBe(true);
    expect(isPrintable('ascii then \u00e9')).toBe(true);
    expect(isPrintable('ascii then \u0085')).toBe(false);
  });
});
