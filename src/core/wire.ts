/**
 * The wire format, as pure functions. A datagram is a 3-byte header (magic "GV", protocol
 * version) followed by one or more messages, each a MessagePack array whose first element is
 * the message type. Several messages in one datagram form a compound packet, filled up to the
 * configured payload size. Stream frames (push-pull over TCP) use the same header and carry one
 * message. Fields are positional, so adding a field means appending it: older decoders ignore
 * trailing elements and skip message types they do not know.
 */
import { Packr } from 'msgpackr/pack';
import { Unpackr } from 'msgpackr/unpack';
import { sha512 } from '@noble/hashes/sha2.js';
import { scanValue, type ScanErrorReason, type ScanLimits } from './msgpack-scan.js';

/** Message type numbers are part of the protocol. ONLY APPEND TO THIS LIST. */
export const MessageType = {
  Ping: 1,
  PingReq: 2,
  Ack: 3,
  Nack: 4,
  Suspect: 5,
  Alive: 6,
  Dead: 7,
  Left: 8,
  PushPull: 9,
  RecordPull: 10,
  /** A keyring change spreading through the cluster (keyring-ops.ts); only ever sealed. */
  KeyringOp: 11,
  /** A message of a room built on the core (the key-value store, events, queries): app-channels.ts. */
  App: 12,
} as const;
export type MessageType = (typeof MessageType)[keyof typeof MessageType];

/** Member states as numbered on the wire. ONLY APPEND TO THIS LIST. */
export const MemberState = { Alive: 0, Suspect: 1, Dead: 2, Left: 3 } as const;
export type MemberState = (typeof MemberState)[keyof typeof MemberState];

export const PROTOCOL_VERSION = 1;
export const HEADER_BYTES = 3;
const MAGIC_0 = 0x47; // 'G'
const MAGIC_1 = 0x56; // 'V'

/**
 * Direct probe: the receiver acks `seq` if it is `target`. `source` names the sender (appended
 * field, absent from older peers): a receiver that knows it alive at the sending address may
 * piggyback gossip on the ack; to anyone else the ack is bare, no larger than the ping.
 */
export interface PingMessage { type: typeof MessageType.Ping; seq: number; target: string; source?: string }
/** Indirect probe request: ping `target` at `targetAddr` and relay its ack (and a nack on timeout). */
export interface PingReqMessage {
  type: typeof MessageType.PingReq; seq: number; target: string; targetAddr: string; nack: boolean;
}
export interface AckMessage { type: typeof MessageType.Ack; seq: number }
/** Sent by an indirect prober whose target did not answer in time: the path, not the requester, is fine. */
export interface NackMessage { type: typeof MessageType.Nack; seq: number }
export interface SuspectMessage { type: typeof MessageType.Suspect; node: string; incarnation: number; from: string }
/**
 * A member's identity: where it is and its metadata record. The record is named by `version`
 * (bumped on every write, within an incarnation) and `digest`/`recordBytes`; `record` carries the
 * record itself when it fits (gossip: recordInlineBytesMax; streams: any size) and is empty when
 * the receiver must pull it with RecordPull.
 */
export interface AliveMessage {
  type: typeof MessageType.Alive; node: string; incarnation: number; addr: string; record: Uint8Array;
  version: number; digest: Uint8Array; recordBytes: number;
}
export interface DeadMessage { type: typeof MessageType.Dead; node: string; incarnation: number }
/** A graceful leave, said by the member itself. */
export interface LeftMessage { type: typeof MessageType.Left; node: string; incarnation: number }

/** Asks the receiver for `node`'s record at `version` or newer (stream only); the reply is an Alive carrying it. */
export interface RecordPullMessage { type: typeof MessageType.RecordPull; node: string; incarnation: number; version: number }

/** One member as carried in a push-pull state; `record` is empty when the record is too large to inline. */
export interface PushPullEntry {
  name: string;
  addr: string;
  record: Uint8Array;
  /** Incarnation of the alive message that `addr` and `record` came from. */
  aliveIncarnation: number;
  incarnation: number;
  state: MemberState;
  version: number;
  digest: Uint8Array;
  recordBytes: number;
}
/** Full state exchange over a stream; `reply` marks the answer to one. */
export interface PushPullMessage {
  type: typeof MessageType.PushPull; join: boolean; reply: boolean; members: PushPullEntry[];
}

/** What a keyring change does with its key: install it, make it the primary, or remove it. ONLY APPEND. */
export const KeyringAction = { Install: 1, Use: 2, Remove: 3 } as const;
export type KeyringAction = (typeof KeyringAction)[keyof typeof KeyringAction];

/**
 * A keyring change, ordered by `version` (the issuer's wall clock, or one past the newest it
 * heard) then `origin`, the issuing member's name: the newest per key, and the newest use, win.
 */
export interface KeyringOpMessage { type: typeof MessageType.KeyringOp; action: KeyringAction; key: Uint8Array; version: number; origin: string }

/** How an app message travels: in a datagram (gossiped or sent to one member), as a stream request, or as its answer. ONLY APPEND. */
export const AppKind = { Datagram: 0, Request: 1, Reply: 2 } as const;
export type AppKind = (typeof AppKind)[keyof typeof AppKind];

/** A room's message on its channel (0-255); the core never looks inside `payload`. */
export interface AppMessage { type: typeof MessageType.App; channel: number; payload: Uint8Array; kind: AppKind }

export type Message =
  | PingMessage | PingReqMessage | AckMessage | NackMessage | SuspectMessage
  | AliveMessage | DeadMessage | LeftMessage | PushPullMessage | RecordPullMessage | KeyringOpMessage | AppMessage;

/** Limits applied while decoding peer input. */
export interface WireLimits {
  nameBytesMax: number;
  addrBytesMax: number;
  /** Largest record carried inline in one message. */
  carriedRecordBytesMax: number;
  /** Largest record size a digest may announce. */
  recordBytesMax: number;
  /** Most members in one push-pull message. */
  membersMax: number;
  /** Most messages in one packet or frame; more is refused whole, before any is decoded. */
  messagesMax: number;
  /** Largest app message payload (app-channels.ts); default carriedRecordBytesMax. */
  appBytesMax?: number;
}

export type DecodeErrorReason = 'bad-header' | 'empty' | 'bad-field' | 'too-many-messages' | ScanErrorReason;

/** Why a packet was rejected; `offset` is where in the input the problem was found. */
export interface DecodeError { reason: DecodeErrorReason; offset: number; detail?: string }

export type DecodeResult =
  | { ok: true; messages: Message[]; unknownTypes: number }
  | { ok: false; error: DecodeError };

const packr = new Packr({ useRecords: false, variableMapSize: true });
// copyBuffers: a decoded blob must not pin the whole packet (or a multi-megabyte stream frame).
const unpackr = new Unpackr({ useRecords: false, copyBuffers: true });

/** Encodes one message body (no header). */
export function encodeMessage(message: Message): Uint8Array {
  return packr.pack(toTuple(message));
}

function toTuple(m: Message): unknown[] {
  switch (m.type) {
    case MessageType.Ping: return m.source === undefined ? [m.type, m.seq, m.target] : [m.type, m.seq, m.target, m.source];
    case MessageType.PingReq: return [m.type, m.seq, m.target, m.targetAddr, m.nack];
    case MessageType.Ack: return [m.type, m.seq];
    case MessageType.Nack: return [m.type, m.seq];
    case MessageType.Suspect: return [m.type, m.node, m.incarnation, m.from];
    case MessageType.Alive: return [m.type, m.node, m.incarnation, m.addr, m.record, m.version, m.digest, m.recordBytes];
    case MessageType.Dead: return [m.type, m.node, m.incarnation];
    case MessageType.Left: return [m.type, m.node, m.incarnation];
    case MessageType.PushPull: return [m.type, m.join, m.reply, m.members.map(entryTuple)];
    case MessageType.RecordPull: return [m.type, m.node, m.incarnation, m.version];
    case MessageType.KeyringOp: return [m.type, m.action, m.key, m.version, m.origin];
    case MessageType.App: return m.kind === AppKind.Datagram ? [m.type, m.channel, m.payload] : [m.type, m.channel, m.payload, m.kind];
  }
}

function entryTuple(e: PushPullEntry): unknown[] {
  return [e.name, e.addr, e.record, e.aliveIncarnation, e.incarnation, e.state, e.version, e.digest, e.recordBytes];
}

/** A push-pull's member list, encoded once and framed for each exchange by `pushPullPacket`. */
export function encodePushPullMembers(members: readonly PushPullEntry[]): Uint8Array {
  return packr.pack(members.map(entryTuple));
}

/** The packet `encodePacket` makes of a push-pull whose member list `encodePushPullMembers` encoded. */
export function pushPullPacket(join: boolean, reply: boolean, members: Uint8Array): Uint8Array {
  // A 4-element MessagePack array: the type, then the two flags as true (0xc3) or false (0xc2).
  const head = [0x94, MessageType.PushPull, join ? 0xc3 : 0xc2, reply ? 0xc3 : 0xc2];
  return buildPacket([Uint8Array.from(head), members]);
}

/** Concatenates the header and already-encoded message bodies into one packet. */
export function buildPacket(bodies: readonly Uint8Array[]): Uint8Array {
  let size = HEADER_BYTES;
  for (const b of bodies) size += b.length;
  const out = new Uint8Array(size);
  out[0] = MAGIC_0;
  out[1] = MAGIC_1;
  out[2] = PROTOCOL_VERSION;
  let at = HEADER_BYTES;
  for (const b of bodies) {
    out.set(b, at);
    at += b.length;
  }
  return out;
}

/** Encodes messages into one packet, ignoring size limits (streams, tests). */
export function encodePacket(messages: readonly Message[]): Uint8Array {
  return buildPacket(messages.map(encodeMessage));
}

/**
 * Decodes a packet. Never throws: malformed input yields `{ ok: false, error }`. Messages of a
 * type this version does not know are skipped and counted, so newer peers can add types.
 */
export function decodePacket(bytes: Uint8Array, limits: WireLimits): DecodeResult {
  if (bytes.length < HEADER_BYTES || bytes[0] !== MAGIC_0 || bytes[1] !== MAGIC_1 || bytes[2] === 0) {
    return { ok: false, error: { reason: 'bad-header', offset: 0 } };
  }
  if (bytes.length === HEADER_BYTES) return { ok: false, error: { reason: 'empty', offset: HEADER_BYTES } };
  const scanLimits: ScanLimits = {
    depthMax: 3,
    arrayLengthMax: Math.max(8, limits.membersMax),
    stringBytesMax: Math.max(limits.nameBytesMax, limits.addrBytesMax),
    binaryBytesMax: Math.max(DIGEST_BYTES, limits.carriedRecordBytesMax, limits.appBytesMax ?? 0),
  };
  // Scan every value first, so msgpackr only ever sees input that passed the bounds.
  let pos = HEADER_BYTES;
  for (let count = 0; pos < bytes.length; count++) {
    // Bounded work per input: a 16 MiB frame of 8 million tiny messages blocked the loop 1.7 s.
    if (count >= limits.messagesMax) return { ok: false, error: { reason: 'too-many-messages', offset: pos } };
    const scanned = scanValue(bytes, pos, scanLimits);
    if (!scanned.ok) return { ok: false, error: { reason: scanned.reason, offset: scanned.offset } };
    pos = scanned.end;
  }
  let values: unknown[];
  try {
    values = unpackr.unpackMultiple(bytes.subarray(HEADER_BYTES)) as unknown[];
  } catch (e) {
    // The scan admits only types msgpackr decodes plainly; this guards against surprises.
    return { ok: false, error: { reason: 'bad-field', offset: HEADER_BYTES, detail: String(e) } };
  }
  const messages: Message[] = [];
  let unknownTypes = 0;
  for (let i = 0; i < values.length; i++) {
    const message = fromTuple(values[i], limits);
    if (message === UNKNOWN) {
      unknownTypes++;
    } else if (typeof message === 'string') {
      return { ok: false, error: { reason: 'bad-field', offset: HEADER_BYTES, detail: `message ${i}: ${message}` } };
    } else {
      messages.push(message);
    }
  }
  return { ok: true, messages, unknownTypes };
}

const UNKNOWN = Symbol('unknown message type');

/** Validates one decoded tuple; returns the message, UNKNOWN, or a description of the bad field. */
function fromTuple(value: unknown, limits: WireLimits): Message | typeof UNKNOWN | string {
  if (!Array.isArray(value) || value.length === 0) return 'message is not a non-empty array';
  const t: unknown = value[0];
  if (typeof t !== 'number' || !Number.isInteger(t) || t < 0) return 'message type is not an unsigned integer';
  const v = value as unknown[];
  switch (t) {
    case MessageType.Ping: {
      const bad = need(v, 3) ?? u32(v[1], 'seq') ?? name(v[2], 'target', limits) ?? (v.length > 3 ? name(v[3], 'source', limits) : undefined);
      if (bad !== undefined) return bad;
      return v.length > 3 ? { type: t, seq: v[1] as number, target: v[2] as string, source: v[3] as string } : { type: t, seq: v[1] as number, target: v[2] as string };
    }
    case MessageType.PingReq: {
      const bad = need(v, 5) ?? u32(v[1], 'seq') ?? name(v[2], 'target', limits)
        ?? addr(v[3], 'targetAddr', limits) ?? bool(v[4], 'nack');
      return bad ?? { type: t, seq: v[1] as number, target: v[2] as string, targetAddr: v[3] as string, nack: v[4] as boolean };
    }
    case MessageType.Ack:
    case MessageType.Nack:
      return need(v, 2) ?? u32(v[1], 'seq') ?? { type: t, seq: v[1] as number };
    case MessageType.Suspect: {
      const bad = need(v, 4) ?? name(v[1], 'node', limits) ?? incarnation(v[2], 'incarnation') ?? name(v[3], 'from', limits);
      return bad ?? { type: t, node: v[1] as string, incarnation: v[2] as number, from: v[3] as string };
    }
    case MessageType.Alive: {
      const bad = need(v, 8) ?? name(v[1], 'node', limits) ?? incarnation(v[2], 'incarnation')
        ?? addr(v[3], 'addr', limits) ?? record(v[4], v[5], v[6], v[7], limits);
      return bad ?? {
        type: t, node: v[1] as string, incarnation: v[2] as number, addr: v[3] as string, record: bytes(v[4] as Uint8Array),
        version: v[5] as number, digest: sharedDigest(v[6] as Uint8Array), recordBytes: v[7] as number,
      };
    }
    case MessageType.RecordPull: {
      const bad = need(v, 4) ?? name(v[1], 'node', limits) ?? incarnation(v[2], 'incarnation') ?? u32(v[3], 'version');
      return bad ?? { type: t, node: v[1] as string, incarnation: v[2] as number, version: v[3] as number };
    }
    case MessageType.Dead:
    case MessageType.Left: {
      const bad = need(v, 3) ?? name(v[1], 'node', limits) ?? incarnation(v[2], 'incarnation');
      return bad ?? { type: t, node: v[1] as string, incarnation: v[2] as number };
    }
    case MessageType.PushPull:
      return need(v, 4) ?? bool(v[1], 'join') ?? bool(v[2], 'reply') ?? pushPullMembers(v, limits);
    case MessageType.App: {
      const bad = need(v, 3) ?? (Number.isInteger(v[1]) && (v[1] as number) >= 0 && (v[1] as number) <= 255 ? undefined : 'channel is not 0..255')
        ?? (v[2] instanceof Uint8Array && v[2].length <= (limits.appBytesMax ?? limits.carriedRecordBytesMax) ? undefined : 'payload is not bytes within the limit')
        ?? (v.length < 4 || v[3] === 0 || v[3] === 1 || v[3] === 2 ? undefined : 'kind is not 0, 1 or 2');
      return bad ?? { type: t, channel: v[1] as number, payload: bytes(v[2] as Uint8Array), kind: (v[3] ?? 0) as AppKind };
    }
    case MessageType.KeyringOp: {
      const action = v[1];
      const bad = need(v, 5) ?? (action === 1 || action === 2 || action === 3 ? undefined : 'action is not 1, 2 or 3')
        ?? (v[2] instanceof Uint8Array && v[2].length === 32 ? undefined : 'key is not 32 bytes')
        ?? incarnation(v[3], 'version') ?? name(v[4], 'origin', limits);
      return bad ?? { type: t, action: action as KeyringAction, key: v[2] as Uint8Array, version: v[3] as number, origin: v[4] as string };
    }
    default:
      return UNKNOWN;
  }
}

function pushPullMembers(v: unknown[], limits: WireLimits): PushPullMessage | string {
  const list = v[3];
  if (!Array.isArray(list)) return 'members is not an array';
  if (list.length > limits.membersMax) return `members has ${list.length} entries, limit ${limits.membersMax}`;
  const members: PushPullEntry[] = new Array(list.length);
  for (let i = 0; i < list.length; i++) {
    const e: unknown = list[i];
    if (!Array.isArray(e) || e.length < 9) return `member ${i} is not a 9-element array`;
    const problem = name(e[0], 'member name', limits) ?? addr(e[1], 'member addr', limits)
      ?? incarnation(e[3], 'aliveIncarnation') ?? incarnation(e[4], 'incarnation') ?? memberState(e[5]) ?? record(e[2], e[6], e[7], e[8], limits);
    if (problem !== undefined) return `member ${i}: ${problem}`;
    members[i] = {
      name: e[0] as string, addr: e[1] as string, record: bytes(e[2] as Uint8Array),
      aliveIncarnation: e[3] as number, incarnation: e[4] as number, state: e[5] as MemberState,
      version: e[6] as number, digest: sharedDigest(e[7] as Uint8Array), recordBytes: e[8] as number,
    };
  }
  return { type: MessageType.PushPull, join: v[1] as boolean, reply: v[2] as boolean, members };
}

/** An empty record is the common case: share one instance instead of one allocation per member and per node. */
export const EMPTY_BYTES = new Uint8Array(0);

export const DIGEST_BYTES = 8;

/** Names a record's content: the first 8 bytes of its SHA-512, enough to tell versions apart (not a MAC). */
export function recordDigest(record: Uint8Array): Uint8Array {
  return record.length === 0 ? EMPTY_DIGEST : sha512(record).slice(0, DIGEST_BYTES);
}
export const EMPTY_DIGEST = sha512(EMPTY_BYTES).slice(0, DIGEST_BYTES);

/** Most members carry no record: share the empty record's digest rather than keep one copy per entry. */
function sharedDigest(d: Uint8Array): Uint8Array {
  for (let i = 0; i < DIGEST_BYTES; i++) if (d[i] !== EMPTY_DIGEST[i]) return d;
  return EMPTY_DIGEST;
}

/** The record fields of an alive message or push-pull entry that carries `record` inline (tests, tools, bootstrap). */
export function withRecord(record: Uint8Array = EMPTY_BYTES, version = 0): { record: Uint8Array; version: number; digest: Uint8Array; recordBytes: number } {
  return { record, version, digest: recordDigest(record), recordBytes: record.length };
}

function bytes(b: Uint8Array): Uint8Array {
  return b.length === 0 ? EMPTY_BYTES : b;
}

function need(v: unknown[], n: number): string | undefined {
  return v.length < n ? `message type ${String(v[0])} needs ${n} fields, got ${v.length}` : undefined;
}
/**
 * Incarnations are integers up to 2^53 - 1, not 32 bits: a member must always be able to refute
 * with a higher one, and receivers bound how far one message may move it (members.ts), so the
 * counter cannot be run to its end.
 */
export const INCARNATION_MAX = Number.MAX_SAFE_INTEGER;
function incarnation(x: unknown, field: string): string | undefined {
  return typeof x === 'number' && Number.isInteger(x) && x >= 0 && x <= INCARNATION_MAX ? undefined : `${field} is not an incarnation`;
}
function u32(x: unknown, field: string): string | undefined {
  return typeof x === 'number' && Number.isInteger(x) && x >= 0 && x <= 0xffff_ffff ? undefined : `${field} is not a uint32`;
}
function bool(x: unknown, field: string): string | undefined {
  return typeof x === 'boolean' ? undefined : `${field} is not a boolean`;
}
function name(x: unknown, field: string, limits: WireLimits): string | undefined {
  if (typeof x === 'string' && x.length > 0) {
    const bytes = printableUtf8Length(x);
    if (bytes > 0 && bytes <= limits.nameBytesMax) return undefined;
  }
  return `${field} is not a valid name`;
}
function addr(x: unknown, field: string, limits: WireLimits): string | undefined {
  return typeof x === 'string' && x.length > 0 && utf8Length(x) <= limits.addrBytesMax ? undefined : `${field} is not a valid address`;
}
/** A record field group: inline bytes (empty, or exactly `size` long), version, digest, size. */
function record(body: unknown, version: unknown, digest: unknown, size: unknown, limits: WireLimits): string | undefined {
  if (!(body instanceof Uint8Array) || body.length > limits.carriedRecordBytesMax) return 'record is not a byte string within the limit';
  const bad = u32(version, 'version') ?? u32(size, 'recordBytes');
  if (bad !== undefined) return bad;
  if (!(digest instanceof Uint8Array) || digest.length !== DIGEST_BYTES) return 'digest is not 8 bytes';
  if ((size as number) > limits.recordBytesMax) return `recordBytes ${String(size)} exceeds ${limits.recordBytesMax}`;
  if (body.length !== 0 && body.length !== size) return 'record length differs from recordBytes';
  // An empty record has one digest; any other would make receivers disagree about what they hold.
  if (size === 0 && sharedDigest(digest) !== EMPTY_DIGEST) return 'digest of an empty record is wrong';
  return undefined;
}
function memberState(x: unknown): string | undefined {
  return x === 0 || x === 1 || x === 2 || x === 3 ? undefined : 'state is not a member state';
}

/** Control, format, surrogate, private-use and unassigned characters, line and paragraph separators, and U+FFFD (what undecodable bytes become). */
const UNPRINTABLE = /[\p{C}\p{Zl}\p{Zp}\uFFFD]/u;

/**
 * True if a name shows as what it is: no control or invisible characters that would let two
 * names look alike or garble a log line, and no U+FFFD. Plain ASCII is checked without the regex.
 */
export function isPrintable(s: string): boolean {
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c < 0x20 || c === 0x7f) return false;
    if (c >= 0x80) return !UNPRINTABLE.test(s);
  }
  return true;
}

/** UTF-8 length of a printable string in one pass (names are decoded on every packet); -1 if it is not printable. */
function printableUtf8Length(s: string): number {
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c < 0x20 || c === 0x7f) return -1;
    if (c >= 0x80) return isPrintable(s) ? utf8Length(s) : -1;
  }
  return s.length;
}

/** UTF-8 length of a string, without allocating. */
export function utf8Length(s: string): number {
  let n = 0;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c < 0x80) n += 1;
    else if (c < 0x800) n += 2;
    else if (c >= 0xd800 && c <= 0xdbff && i + 1 < s.length) {
      const d = s.charCodeAt(i + 1);
      if (d >= 0xdc00 && d <= 0xdfff) {
        n += 4;
        i++;
      } else n += 3;
    } else n += 3;
  }
  return n;
}
