/** fast-check generators for wire messages, shared by the codec and core property tests. */
import fc from 'fast-check';
import { isPrintable, MemberState, MessageType, type Message, type PushPullEntry, withRecord } from '../src/core/wire.js';

export const LIMITS = { nameBytesMax: 128, addrBytesMax: 128, carriedRecordBytesMax: 512, recordBytesMax: 65_536, membersMax: 1_000, messagesMax: 256 };

const u32 = fc.integer({ min: 0, max: 0xffff_ffff });
// Valid names: printable, as the decoder requires.
const name = fc.string({ minLength: 1, maxLength: 40, unit: 'grapheme' }).filter(isPrintable);
const addr = fc.oneof(
  fc.ipV4().map((ip) => `${ip}:7946`),
  fc.ipV6().map((ip) => `[${ip}]:7946`),
);
const meta = fc.uint8Array({ maxLength: 64 });
const state = fc.constantFrom(MemberState.Alive, MemberState.Suspect, MemberState.Dead, MemberState.Left);

/** A record carried inline, or announced by digest alone (empty bytes, non-zero size). */
const record = fc.oneof(
  fc.tuple(meta, u32).map(([m, version]) => withRecord(m, version)),
  fc.tuple(fc.uint8Array({ minLength: 8, maxLength: 8 }), u32, fc.integer({ min: 1, max: 65_536 }))
    .map(([digest, version, recordBytes]) => ({ record: new Uint8Array(0), version, digest, recordBytes })),
);

const entry: fc.Arbitrary<PushPullEntry> = fc.tuple(fc.record({ name, addr, aliveIncarnation: u32, incarnation: u32, state }), record)
  .map(([e, r]) => ({ ...e, ...r }));

/** Any message of any type, with valid fields. */
export const message: fc.Arbitrary<Message> = fc.oneof(
  fc.record({ type: fc.constant(MessageType.Ping), seq: u32, target: name }),
  fc.record({ type: fc.constant(MessageType.PingReq), seq: u32, target: name, targetAddr: addr, nack: fc.boolean() }),
  fc.record({ type: fc.constant(MessageType.Ack), seq: u32 }),
  fc.record({ type: fc.constant(MessageType.Nack), seq: u32 }),
  fc.record({ type: fc.constant(MessageType.Suspect), node: name, incarnation: u32, from: name }),
  fc.tuple(fc.record({ type: fc.constant(MessageType.Alive), node: name, incarnation: u32, addr }), record).map(([m, r]) => ({ ...m, ...r })),
  fc.record({ type: fc.constant(MessageType.RecordPull), node: name, incarnation: u32, version: u32 }),
  fc.record({ type: fc.constant(MessageType.Dead), node: name, incarnation: u32 }),
  fc.record({ type: fc.constant(MessageType.Left), node: name, incarnation: u32 }),
  fc.record({
    type: fc.constant(MessageType.App), channel: fc.integer({ min: 0, max: 255 }), payload: fc.uint8Array({ maxLength: 200 }),
    kind: fc.constantFrom(0, 1, 2) as fc.Arbitrary<0 | 1 | 2>,
  }),
  fc.record({
    type: fc.constant(MessageType.KeyringOp), action: fc.constantFrom(1, 2, 3) as fc.Arbitrary<1 | 2 | 3>,
    key: fc.uint8Array({ minLength: 32, maxLength: 32 }), version: fc.integer({ min: 0, max: Number.MAX_SAFE_INTEGER }), origin: name,
  }),
  fc.record({
    type: fc.constant(MessageType.PushPull), join: fc.boolean(), reply: fc.boolean(),
    members: fc.array(entry, { maxLength: 20 }),
  }),
) as fc.Arbitrary<Message>;

/** Copies every Uint8Array (msgpackr hands back Buffers) so deep equality compares contents only. */
export function normalize(value: unknown): unknown {
  if (value instanceof Uint8Array) return Array.from(value);
  if (Array.isArray(value)) return value.map(normalize);
  if (value !== null && typeof value === 'object') {
    return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, normalize(v)]));
  }
  return value;
}
