/**
 * A user event (serf's UserEvent, Consul's /v1/event): its shape, its limits, its filters and
 * its bytes on the events channel. Pure: no clock, no I/O.
 *
 * On the wire (channel APP_CHANNELS.events), one message per payload, its first byte the kind,
 * its second a version or flag, then a Lamport time (u64, at most 2^53 - 1):
 *   event (1, version 1, a datagram): ID (16 bytes), then origin, name, node, service and tag
 *          filters and payload, each a u16 length and its bytes; bytes after them are ignored,
 *          so a later version may append fields.
 *   sync (2, 0, a stream request): the asker's clock, a u16 count and the IDs of the recent
 *          events it holds (what serf's push-pull carries: EventLTime and the recent events).
 *   missing (3, 0, its answer): the answerer's clock, a u16 count and the recent events the
 *          asker lacked, each a u16 length and the event's bytes.
 */
import { compileRe2 } from '../registry/re2.js';
import { InvalidOptionError, OversizedError } from '../runtime/index.js';

/** A user event as a member delivers it. */
export interface UserEvent {
  /** A random UUID (version 4) given by the member that fired it. */
  readonly id: string;
  readonly name: string;
  readonly payload: Uint8Array;
  /** Its Lamport time on the firing member's event clock. */
  readonly ltime: number;
  /** The name of the member that fired it. */
  readonly origin: string;
  /** Regular expressions (Go's RE2 syntax; '' for none) a member must match to deliver it. */
  readonly nodeFilter: string;
  readonly serviceFilter: string;
  readonly tagFilter: string;
}

/** Who should deliver an event: regular expressions in Go's (RE2) syntax, matched anywhere in the text, as Consul's. */
export interface FireOptions {
  /** Members whose name matches. */
  node?: string;
  /** Members running an instance of a service whose name matches. */
  service?: string;
  /** With `service`: members running such an instance with a tag that matches. */
  tag?: string;
}

/**
 * The name, payload and filters of one event together: at most 512 bytes. serf's
 * UserEventSizeLimit default (serf/config.go), which Consul's events count their name, payload
 * and filters against (agent/user_event.go encodes all three into serf's payload).
 */
export const EVENT_BYTES_MAX = 512;
/** Distinct Lamport times remembered for de-duplication: serf's EventBuffer default (serf/config.go). An event older than the newest by more is dropped. */
export const EVENT_BUFFER_LTIMES = 512;
/** Events remembered at one Lamport time (serf keeps them all; a bound, so one time cannot grow without end). */
export const EVENTS_PER_LTIME_MAX = 64;
/** Longest origin name decoded: the core's largest nameBytesMax. */
const ORIGIN_BYTES_MAX = 1_024;
/** Instructions one filter may compile to (as the HTTP API's ?filter= regular expressions). */
const REGEXP_INSTS_MAX = 2_000;
const ID_BYTES = 16;
const HEADER_BYTES = 2 + 8 + ID_BYTES;

export const MessageKind = { event: 1, sync: 2, missing: 3 } as const;
const VERSION = 1;

const encoder = new TextEncoder();
const decoder = new TextDecoder('utf-8', { fatal: true });

export type Message =
  | { kind: 'event'; event: UserEvent }
  | { kind: 'sync'; ltime: number; ids: Set<string> }
  | { kind: 'missing'; ltime: number; events: { event: UserEvent; bytes: Uint8Array }[] };
/** IDs a sync request carries at most (it holds no more recent events than this). */
export const SYNC_IDS_MAX = 256;

/** The event `fire` describes, checked: InvalidOptionError for a bad name, filter or payload type, OversizedError over EVENT_BYTES_MAX. */
export function checkFire(name: unknown, payload: unknown, options: unknown): { name: string; payload: Uint8Array; filters: Required<FireOptions> } {
  if (typeof name !== 'string' || name === '') throw new InvalidOptionError('name', 'must be a non-empty string (the event name)');
  const bytes = payload === undefined ? new Uint8Array(0) : typeof payload === 'string' ? encoder.encode(payload) : payload instanceof Uint8Array ? payload : undefined;
  if (bytes === undefined) throw new InvalidOptionError('payload', 'must be a Uint8Array or a string');
  if (options !== undefined && (options === null || typeof options !== 'object')) throw new InvalidOptionError('options', 'must be { node?, service?, tag? }');
  const o = (options ?? {}) as Record<string, unknown>;
  const filters = { node: '', service: '', tag: '' };
  for (const key of ['node', 'service', 'tag'] as const) {
    const v = o[key];
    if (v === undefined || v === '') continue;
    if (typeof v !== 'string') throw new InvalidOptionError(key, 'must be a regular expression (a string)');
    compileFilter(v, (why) => {
      throw new InvalidOptionError(key, `invalid ${key} filter: ${why}`);
    });
    filters[key] = v;
  }
  for (const key of Object.keys(o)) if (!(key in filters)) throw new InvalidOptionError(key, 'unknown option (fire takes node, service and tag)');
  if (filters.tag !== '' && filters.service === '') throw new InvalidOptionError('tag', 'cannot filter on a tag without a service filter');
  const size = encoder.encode(name).length + bytes.length + encoder.encode(filters.node + filters.service + filters.tag).length;
  if (size > EVENT_BYTES_MAX) throw new OversizedError('user event (name, payload and filters)', size, EVENT_BYTES_MAX);
  return { name, payload: bytes, filters };
}

/** A filter as a linear-time matcher (patterns arrive from peers: no backtracking engine). */
export function compileFilter(pattern: string, fail: (why: string) => never): (text: string) => boolean {
  return compileRe2(pattern, { insts: REGEXP_INSTS_MAX }, (code, expr) => fail(`error parsing regexp: ${code}: \`${expr}\``));
}

/**
 * A random version-4 UUID whose Consul index (its halves XORed: Consul's uuidToUint64) is below
 * 2^53, so X-Consul-Index is exact in JavaScript and Go's client reads back the index it blocks on.
 * 111 random bits remain.
 */
export function newEventId(random: (n: number) => Uint8Array): string {
  for (;;) {
    const b = random(ID_BYTES);
    b[6] = ((b[6] as number) & 0x0f) | 0x40;
    b[8] = ((b[8] as number) & 0x3f) | 0x80;
    b[0] = b[8] as number;
    b[1] = ((b[1] as number) & 0x1f) | ((b[9] as number) & 0xe0);
    const id = idText(b);
    if (consulIndexOf(id) !== 0) return id;
  }
}

/** Consul's X-Consul-Index for an event ID (agent/event_endpoint.go uuidToUint64), kept below 2^53: exact for IDs grapevine makes. */
export function consulIndexOf(id: string): number {
  const hex = id.replace(/-/g, '');
  const x = BigInt(`0x${hex.slice(0, 16)}`) ^ BigInt(`0x${hex.slice(16, 32)}`);
  return Number(x & BigInt(Number.MAX_SAFE_INTEGER));
}

function idText(b: Uint8Array): string {
  const hex = [...b].map((x) => x.toString(16).padStart(2, '0')).join('');
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
}

function idBytes(id: string): Uint8Array {
  const hex = id.replace(/-/g, '');
  const out = new Uint8Array(ID_BYTES);
  for (let i = 0; i < ID_BYTES; i++) out[i] = Number.parseInt(hex.slice(2 * i, 2 * i + 2), 16);
  return out;
}

function putTime(view: DataView, at: number, ltime: number): void {
  view.setUint32(at, Math.floor(ltime / 2 ** 32));
  view.setUint32(at + 4, ltime >>> 0);
}

function getTime(view: DataView, at: number): number | undefined {
  const hi = view.getUint32(at);
  if (hi >= 2 ** 21) return undefined; // past 2^53 - 1: not a safe integer
  return hi * 2 ** 32 + view.getUint32(at + 4);
}

export function encodeEvent(e: UserEvent): Uint8Array {
  const fields: Uint8Array[] = [e.origin, e.name, e.nodeFilter, e.serviceFilter, e.tagFilter].map((s) => encoder.encode(s));
  fields.push(e.payload);
  const out = new Uint8Array(HEADER_BYTES + fields.reduce((n, f) => n + 2 + f.length, 0));
  const view = new DataView(out.buffer);
  out[0] = MessageKind.event;
  out[1] = VERSION;
  putTime(view, 2, e.ltime);
  out.set(idBytes(e.id), 10);
  let at = HEADER_BYTES;
  for (const f of fields) {
    view.setUint16(at, f.length);
    out.set(f, at + 2);
    at += 2 + f.length;
  }
  return out;
}

/** A sync request: this member's clock and the IDs of the recent events it holds. */
export function encodeSync(ltime: number, ids: readonly string[]): Uint8Array {
  const out = new Uint8Array(12 + ids.length * ID_BYTES);
  const view = new DataView(out.buffer);
  out[0] = MessageKind.sync;
  putTime(view, 2, ltime);
  view.setUint16(10, ids.length);
  ids.forEach((id, i) => out.set(idBytes(id), 12 + i * ID_BYTES));
  return out;
}

/** A sync answer: this member's clock and the encoded events the asker lacked. */
export function encodeMissing(ltime: number, events: readonly Uint8Array[]): Uint8Array {
  const out = new Uint8Array(12 + events.reduce((n, e) => n + 2 + e.length, 0));
  const view = new DataView(out.buffer);
  out[0] = MessageKind.missing;
  putTime(view, 2, ltime);
  view.setUint16(10, events.length);
  let at = 12;
  for (const e of events) {
    view.setUint16(at, e.length);
    out.set(e, at + 2);
    at += 2 + e.length;
  }
  return out;
}

/** A message from a peer, or why it is not one (the caller counts it and drops it). */
export function decodeMessage(bytes: Uint8Array): Message | string {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  if (bytes.length < 10) return 'short';
  const ltime = getTime(view, 2);
  if (ltime === undefined) return 'ltime-range';
  if (bytes[0] === MessageKind.event) return decodeEvent(bytes, view, ltime);
  if (bytes[0] !== MessageKind.sync && bytes[0] !== MessageKind.missing) return 'unknown-kind';
  if (bytes.length < 12) return 'short';
  const count = view.getUint16(10);
  if (bytes[0] === MessageKind.sync) {
    if (count > SYNC_IDS_MAX || bytes.length < 12 + count * ID_BYTES) return 'malformed';
    const ids = new Set<string>();
    for (let i = 0; i < count; i++) ids.add(idText(bytes.subarray(12 + i * ID_BYTES, 12 + (i + 1) * ID_BYTES)));
    return { kind: 'sync', ltime, ids };
  }
  if (count > SYNC_IDS_MAX) return 'malformed';
  const events: { event: UserEvent; bytes: Uint8Array }[] = [];
  let at = 12;
  for (let i = 0; i < count; i++) {
    if (at + 2 > bytes.length) return 'malformed';
    const n = view.getUint16(at);
    if (at + 2 + n > bytes.length) return 'malformed';
    const one = bytes.slice(at + 2, at + 2 + n);
    const m = decodeMessage(one);
    if (typeof m === 'string' || m.kind !== 'event') return 'malformed';
    events.push({ event: m.event, bytes: one });
    at += 2 + n;
  }
  return { kind: 'missing', ltime, events };
}

function decodeEvent(bytes: Uint8Array, view: DataView, ltime: number): Message | string {
  if ((bytes[1] as number) < VERSION || bytes.length < HEADER_BYTES) return 'malformed';
  const fields: Uint8Array[] = [];
  let at = HEADER_BYTES;
  for (let i = 0; i < 6; i++) {
    if (at + 2 > bytes.length) return 'malformed';
    const n = view.getUint16(at);
    if (at + 2 + n > bytes.length) return 'malformed';
    fields.push(bytes.slice(at + 2, at + 2 + n));
    at += 2 + n;
  }
  const [origin, name, node, service, tag, payload] = fields as [Uint8Array, Uint8Array, Uint8Array, Uint8Array, Uint8Array, Uint8Array];
  if (origin.length === 0 || origin.length > ORIGIN_BYTES_MAX || name.length === 0) return 'malformed';
  if (name.length + payload.length + node.length + service.length + tag.length > EVENT_BYTES_MAX) return 'oversized';
  try {
    const text = (b: Uint8Array): string => decoder.decode(b);
    const event: UserEvent = {
      id: idText(bytes.subarray(10, 10 + ID_BYTES)), name: text(name), payload, ltime, origin: text(origin),
      nodeFilter: text(node), serviceFilter: text(service), tagFilter: text(tag),
    };
    return { kind: 'event', event };
  } catch {
    return 'not-utf8';
  }
}
