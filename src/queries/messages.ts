/**
 * The queries channel's two messages (APP_CHANNELS.queries), as positional MessagePack tuples:
 *
 *   query  [0, lamport, id, origin, originAddr, name, payload, nodes, tags, timeoutMs]
 *   answer [1, lamport, id, from, payload]
 *
 * serf's messageQuery and messageQueryResponse (serf/messages.go) without what we leave out
 * (acks, relay factor, the no-broadcast flag). `lamport` and `id` together name a query, as in
 * serf's handleQueryResponse. Decoding is bounded: every field is checked by type and length, and
 * anything else is `undefined` (dropped and counted by the room, never thrown).
 */
import { Packr } from 'msgpackr/pack';
import { Unpackr } from 'msgpackr/unpack';
import { QUERY_NAME_BYTES_MAX, QUERY_TIMEOUT_MS_MAX, TAG_FILTERS_MAX, TAG_PATTERN_CHARS_MAX } from './limits.js';

export const QUERY = 0;
export const ANSWER = 1;

/** Longest member name we accept in a message (the core's own limit is lower). */
const NAME_BYTES_MAX = 512;
/** An address "host:port", IPv6 in brackets: 47 bytes at most; some slack. */
const ADDR_BYTES_MAX = 64;

export interface QueryMessage {
  lamport: number;
  id: number;
  origin: string;
  originAddr: string;
  name: string;
  payload: Uint8Array;
  nodes: string[] | undefined;
  tags: [string, string][] | undefined;
  timeoutMs: number;
}

export interface AnswerMessage {
  lamport: number;
  id: number;
  from: string;
  payload: Uint8Array;
}

const packr = new Packr({ useRecords: false, variableMapSize: true });
const unpackr = new Unpackr({ useRecords: false });
const utf8 = new TextEncoder();

export const utf8Bytes = (s: string): number => utf8.encode(s).length;

export function encodeQuery(q: QueryMessage): Uint8Array {
  return packr.pack([QUERY, q.lamport, q.id, q.origin, q.originAddr, q.name, q.payload, q.nodes ?? null, q.tags ?? null, q.timeoutMs]);
}

export function encodeAnswer(a: AnswerMessage): Uint8Array {
  return packr.pack([ANSWER, a.lamport, a.id, a.from, a.payload]);
}

/** A decoded message, or the reason it is refused. */
export type Decoded = { type: 'query'; query: QueryMessage } | { type: 'answer'; answer: AnswerMessage } | { type: 'bad'; reason: string };

export function decodeMessage(bytes: Uint8Array): Decoded {
  let v: unknown;
  try {
    v = unpackr.unpack(bytes);
  } catch {
    return { type: 'bad', reason: 'undecodable' };
  }
  if (!Array.isArray(v)) return { type: 'bad', reason: 'not a tuple' };
  const lamport = v[1] as unknown;
  const id = v[2] as unknown;
  if (!isCounter(lamport) || !isId(id)) return { type: 'bad', reason: 'bad lamport time or id' };
  if (v[0] === ANSWER && v.length === 5) {
    const [, , , from, payload] = v as unknown[];
    if (!isText(from, NAME_BYTES_MAX) || !(payload instanceof Uint8Array)) return { type: 'bad', reason: 'bad answer' };
    return { type: 'answer', answer: { lamport, id, from, payload: copy(payload) } };
  }
  if (v[0] !== QUERY || v.length !== 10) return { type: 'bad', reason: 'unknown message' };
  const [, , , origin, originAddr, name, payload, nodes, tags, timeoutMs] = v as unknown[];
  if (!isText(origin, NAME_BYTES_MAX) || !isText(originAddr, ADDR_BYTES_MAX) || !isText(name, QUERY_NAME_BYTES_MAX)) return { type: 'bad', reason: 'bad origin or name' };
  if (!(payload instanceof Uint8Array)) return { type: 'bad', reason: 'bad payload' };
  if (nodes !== null && !(Array.isArray(nodes) && nodes.every((n) => isText(n, NAME_BYTES_MAX)))) return { type: 'bad', reason: 'bad node filter' };
  if (tags !== null && !(Array.isArray(tags) && tags.length <= TAG_FILTERS_MAX && tags.every(isTagFilter))) return { type: 'bad', reason: 'bad tag filter' };
  if (typeof timeoutMs !== 'number' || !Number.isInteger(timeoutMs) || timeoutMs < 1 || timeoutMs > QUERY_TIMEOUT_MS_MAX) return { type: 'bad', reason: 'bad timeout' };
  return {
    type: 'query',
    query: {
      lamport, id, origin, originAddr, name, payload: copy(payload),
      nodes: nodes === null ? undefined : (nodes as string[]),
      tags: tags === null ? undefined : (tags as [string, string][]),
      timeoutMs,
    },
  };
}

const isCounter = (x: unknown): x is number => typeof x === 'number' && Number.isSafeInteger(x) && x >= 0;
const isId = (x: unknown): x is number => typeof x === 'number' && Number.isInteger(x) && x >= 0 && x <= 0xffff_ffff;
const isText = (x: unknown, bytesMax: number): x is string => typeof x === 'string' && x.length > 0 && utf8Bytes(x) <= bytesMax;
const isTagFilter = (x: unknown): boolean =>
  Array.isArray(x) && x.length === 2 && isText(x[0], NAME_BYTES_MAX) && typeof x[1] === 'string' && x[1].length <= TAG_PATTERN_CHARS_MAX;
/** msgpackr hands out views into its input (Buffers under Node): keep a plain copy. */
const copy = (b: Uint8Array): Uint8Array => new Uint8Array(b);
