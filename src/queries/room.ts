/**
 * Queries (serf's `serf query`): ask every member, gather the answers as they come.
 *
 * Theory of operation. The origin stamps a query with its query clock (Lamport) and a random
 * 32-bit id, answers it itself if it may, and gossips it on APP_CHANNELS.queries; every member
 * that hears it for the first time gossips it on (the broadcast queue sends each its retransmit
 * count), so it spreads epidemically with bounded fan-out, as serf's handleQuery returning
 * `rebroadcast` does. A member that passes the query's node and tag filters (serf's
 * shouldProcessQuery) and has an answer registered under its name answers once, straight to the
 * origin: in a datagram when the answer fits, else as a stream request. The origin yields each
 * member's first answer (serf's handleQueryResponse drops duplicates by name) until the timeout,
 * or until every live member its own table says passes the filters has answered. Gossip sends
 * each broadcast only its retransmit count and can miss a member, so once the gossip has had time
 * to spread the origin sends the query straight to (a few of) the expected members still silent.
 *
 * No amplification. A query names its origin and the origin's address; a member answers, and
 * gossips the query on, only when that name is a live member at exactly that address in its own
 * table, and answers to the address from its table, so a forged query can make no member send
 * anything to an address that is not a member. Each member answers at most a few queries a second
 * per origin (OriginRate), runs a bounded number of answer handlers at once, and refuses answers
 * over ANSWER_BYTES_MAX unsent. With a keyring, queries and answers are sealed by the channel.
 */
import { randomInt } from 'node:crypto';
import { compileRe2 } from '../registry/re2.js';
import {
  APP_CHANNELS, type AppChannel, type Extension, type ExtensionContext, type ExtensionStarter, type Grapevine, type GrapevineOptions,
  InvalidOptionError, InvalidStateError, type Logger, OversizedError, resolveConfig,
} from '../runtime/index.js';
import type { AnswerHandler, QueryAnswer, QueryOptions, Queries } from './api.js';
import { ANSWER_BYTES_MAX, QUERY_NAME_BYTES_MAX, QUERY_TIMEOUT_MS_MAX, TAG_FILTERS_MAX, TAG_PATTERN_CHARS_MAX } from './limits.js';
import { type AnswerMessage, decodeMessage, encodeAnswer, encodeQuery, type QueryMessage, utf8Bytes } from './messages.js';
import { rooms } from './rooms.js';
import { LamportClock, OriginRate, SeenQueries } from './seen.js';

/** serf's QueryTimeoutMult (serf/config.go): default timeout = gossip interval x this x ceil(log10(N + 1)). */
const QUERY_TIMEOUT_MULT = 16;
/** Queries one member answers per origin: this many a second, in bursts up to QUERY_BURST_PER_ORIGIN. */
const QUERIES_PER_ORIGIN_PER_SECOND = 10;
const QUERY_BURST_PER_ORIGIN = 20;
/** Answer handlers running at once on one member; queries beyond are not answered. */
const ANSWERS_IN_FLIGHT_MAX = 256;
/** Queries this member may have open at once (each holds a timer and a set of the members that answered). */
const OPEN_QUERIES_MAX = 1_024;
/**
 * Members the origin sends its query to directly, once, when they have not answered after the
 * gossip has had time to spread. Ours, not serf's: a broadcast is sent only its retransmit count
 * (2 per member on the local profile), so in a 4-member cluster about one query in nine missed a
 * member entirely (measured); queries have no anti-entropy to repair that later.
 */
const REPAIR_MEMBERS_MAX = 16;
/** When the repair goes: this many gossip intervals x ceil(log10(N + 1)) after the query, and by half its timeout at the latest. */
const REPAIR_AFTER_GOSSIP_INTERVALS = 4;
/** Each tag filter's compiled size (RE2 instructions), so every member's cost of a pattern is bounded. */
const PATTERN_INSTS_MAX = 2_000;
/** Fallback when the member was started without prepare (memberlist's LAN gossip interval). */
const GOSSIP_INTERVAL_MS_DEFAULT = 200;

const utf8 = new TextEncoder();

/** A query this member asked, while it gathers answers. */
interface Open {
  readonly expected: Set<string>;
  readonly answered: Set<string>;
  readonly push: (answer: QueryAnswer) => void;
  readonly end: () => void;
}

type Counter = 'queriesSent' | 'queriesRepaired' | 'queriesHeard' | 'queriesDuplicate' | 'queriesForged' | 'queriesTooOld' | 'queriesRateLimited' | 'queriesFiltered'
  | 'answersSent' | 'answersOversized' | 'answersLate' | 'answersShed' | 'answersFailed' | 'answersReceived' | 'answersDuplicate' | 'answersUnsolicited'
  | 'messagesBad';

class QueryRoom implements Queries {
  readonly stats: Record<Counter, number> = {
    queriesSent: 0, queriesRepaired: 0, queriesHeard: 0, queriesDuplicate: 0, queriesForged: 0, queriesTooOld: 0, queriesRateLimited: 0, queriesFiltered: 0,
    answersSent: 0, answersOversized: 0, answersLate: 0, answersShed: 0, answersFailed: 0, answersReceived: 0, answersDuplicate: 0, answersUnsolicited: 0,
    messagesBad: 0,
  };
  private readonly clock = new LamportClock();
  private readonly seen = new SeenQueries();
  private readonly rate = new OriginRate(QUERIES_PER_ORIGIN_PER_SECOND, QUERY_BURST_PER_ORIGIN);
  private readonly handlers = new Map<string, AnswerHandler>();
  private readonly open = new Map<string, Open>();
  private inFlight = 0;
  private closed = false;

  constructor(
    private readonly member: Grapevine,
    private readonly channel: AppChannel,
    private readonly gossipIntervalMs: number,
    private readonly log: Logger,
  ) {}

  query(name: string, payload?: Uint8Array | string, options: QueryOptions = {}): AsyncIterableIterator<QueryAnswer> {
    checkName(name);
    const bytes = payloadBytes(payload, 'payload');
    if (options === null || typeof options !== 'object') throw new InvalidOptionError('options', 'must be an object');
    const nodes = checkNodes(options.nodes);
    const tags = checkTags(options.tags);
    const timeoutMs = options.timeoutMs === undefined ? this.defaultTimeoutMs() : checkTimeout(options.timeoutMs);
    const signal = options.signal;
    if (signal !== undefined && !(signal instanceof AbortSignal)) throw new InvalidOptionError('signal', 'must be an AbortSignal');
    if (this.closed) throw new InvalidStateError('query after leave or close');
    if (this.open.size >= OPEN_QUERIES_MAX) throw new InvalidStateError(`${OPEN_QUERIES_MAX} queries are open on this member already`);
    const lamport = this.clock.time();
    const q: QueryMessage = {
      lamport, id: randomInt(0, 0x1_0000_0000), origin: this.member.name, originAddr: this.member.address, name, payload: bytes,
      nodes, tags, timeoutMs,
    };
    const encoded = encodeQuery(q);
    if (encoded.length > this.channel.datagramBytesMax) throw new OversizedError('query', encoded.length, this.channel.datagramBytesMax);
    signal?.throwIfAborted();

    const matchers = compileTags(tags);
    const expected = new Set(this.member.members()
      .filter((m) => (m.state === 'alive' || m.name === this.member.name) && passes(m.name, m.meta, nodes, matchers))
      .map((m) => m.name));
    const queue: QueryAnswer[] = [];
    let wake: (() => void) | undefined;
    let done = false;
    const key = queryKey(q);
    const end = (): void => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      clearTimeout(repair);
      signal?.removeEventListener('abort', end);
      this.open.delete(key);
      wake?.();
    };
    const open: Open = {
      expected,
      answered: new Set(),
      push: (answer) => {
        queue.push(answer);
        wake?.();
      },
      end,
    };
    const timer = setTimeout(end, timeoutMs);
    const repair = setTimeout(() => this.repair(open, encoded), Math.min(timeoutMs / 2, this.gossipIntervalMs * REPAIR_AFTER_GOSSIP_INTERVALS * this.log10Members()));
    signal?.addEventListener('abort', end, { once: true });
    this.open.set(key, open);
    this.stats.queriesSent++;
    // As serf's Query: handled here first (this member may answer its own query), then gossiped.
    this.handleQuery(q, undefined, true);
    this.channel.broadcast(key, encoded);
    if (expected.size === 0) end();

    const iterator: AsyncIterableIterator<QueryAnswer> = {
      next: async () => {
        for (;;) {
          const answer = queue.shift();
          if (answer !== undefined) return { value: answer, done: false };
          if (done) return { value: undefined, done: true };
          await new Promise<void>((resolve) => (wake = resolve));
          wake = undefined;
        }
      },
      return: async () => {
        end();
        queue.length = 0;
        return { value: undefined, done: true };
      },
      [Symbol.asyncIterator]: () => iterator,
    };
    return iterator;
  }

  answer(name: string, handler: AnswerHandler): () => void {
    checkName(name);
    if (typeof handler !== 'function') throw new InvalidOptionError('handler', 'must be a function');
    if (this.closed) throw new InvalidStateError('answer after leave or close');
    if (this.handlers.has(name)) throw new InvalidStateError(`queries named ${JSON.stringify(name)} are answered here already`);
    this.handlers.set(name, handler);
    return () => {
      if (this.handlers.get(name) === handler) this.handlers.delete(name);
    };
  }

  /** Whatever arrives on the channel; never throws (a peer's bad input is dropped and counted). */
  onMessage(from: string, payload: Uint8Array, kind: 'datagram' | 'request' | 'reply'): undefined {
    if (this.closed || kind === 'reply') return undefined;
    const m = decodeMessage(payload);
    if (m.type === 'bad') {
      this.stats.messagesBad++;
      this.log.debug(`query message from ${from} dropped: ${m.reason}`, { from, reason: m.reason });
    } else if (m.type === 'query') {
      // Gossip comes in datagrams; a query as a stream request is nobody's.
      if (kind === 'datagram') this.handleQuery(m.query, payload, false);
      else this.stats.messagesBad++;
    } else this.handleAnswer(m.answer);
    return undefined;
  }

  close(): void {
    this.closed = true;
    this.handlers.clear();
    for (const o of [...this.open.values()]) o.end();
  }

  /** serf's DefaultQueryTimeout: GossipInterval x QueryTimeoutMult x ceil(log10(N + 1)), N the live members. */
  private defaultTimeoutMs(): number {
    return Math.min(QUERY_TIMEOUT_MS_MAX, Math.round(this.gossipIntervalMs * QUERY_TIMEOUT_MULT * this.log10Members()));
  }

  private log10Members(): number {
    const n = this.member.members().filter((m) => m.state === 'alive' || m.state === 'suspect').length;
    return Math.max(1, Math.ceil(Math.log10(n + 1)));
  }

  /** The query straight to (a few of) the members expected that have not answered yet: REPAIR_MEMBERS_MAX. */
  private repair(open: Open, encoded: Uint8Array): void {
    if (this.closed) return;
    let sent = 0;
    for (const name of open.expected) {
      if (sent >= REPAIR_MEMBERS_MAX) break;
      if (open.answered.has(name) || name === this.member.name) continue;
      const m = this.member.member(name);
      if (m === undefined || m.state !== 'alive') continue;
      try {
        this.channel.send(m.addr, encoded, false);
        sent++;
      } catch {
        return; // the member is closing
      }
    }
    this.stats.queriesRepaired += sent;
  }

  /** serf's handleQuery. `raw` is the query as heard, gossiped on unchanged; `local` for this member's own. */
  private handleQuery(q: QueryMessage, raw: Uint8Array | undefined, local: boolean): void {
    let originAddr = q.originAddr;
    if (!local) {
      // The no-amplification rule: answer (and relay) only for an origin that is a live member at that very address here.
      // (This member's own queries come back by gossip too: its name at its address, then a duplicate.)
      const origin = q.origin === this.member.name ? { state: 'alive', addr: this.member.address } : this.member.member(q.origin);
      if (origin === undefined || (origin.state !== 'alive' && origin.state !== 'suspect') || origin.addr !== q.originAddr) {
        this.stats.queriesForged++;
        this.log.debug(`query ${JSON.stringify(q.name)} dropped: its origin ${q.origin} at ${q.originAddr} is not a live member here`, { origin: q.origin, addr: q.originAddr });
        return;
      }
      originAddr = origin.addr;
    }
    this.clock.witness(q.lamport);
    const seen = this.seen.check(this.clock.time(), q.lamport, `${q.origin} ${q.id}`);
    if (seen !== 'new') {
      if (seen === 'duplicate') this.stats.queriesDuplicate++;
      else this.stats.queriesTooOld++;
      return;
    }
    const nowMs = Date.now();
    if (!local && !this.rate.take(q.origin, nowMs)) {
      this.stats.queriesRateLimited++;
      this.log.debug(`query ${JSON.stringify(q.name)} from ${q.origin} not answered: over ${QUERIES_PER_ORIGIN_PER_SECOND} a second from one origin`, { origin: q.origin });
      return;
    }
    if (!local) {
      this.stats.queriesHeard++;
      if (raw !== undefined) this.gossip(queryKey(q), raw);
    }
    const self = this.member.member(this.member.name);
    if (!passes(this.member.name, self?.meta ?? {}, q.nodes, compileTags(q.tags, true))) {
      this.stats.queriesFiltered++;
      return;
    }
    const handler = this.handlers.get(q.name);
    if (handler === undefined) return;
    if (this.inFlight >= ANSWERS_IN_FLIGHT_MAX) {
      this.stats.answersShed++;
      return;
    }
    // serf's Query.Respond refuses an answer past the query's deadline, counted from its arrival.
    const deadlineMs = nowMs + q.timeoutMs;
    this.inFlight++;
    // User code runs outside the core's input that brought the query.
    void Promise.resolve()
      .then(() => handler(q.payload, { from: q.origin, name: q.name }))
      .then((value) => this.sendAnswer(q, originAddr, value, deadlineMs), (e: unknown) => {
        this.stats.answersFailed++;
        this.log.warn(`answering query ${JSON.stringify(q.name)} from ${q.origin} failed: ${(e as Error)?.message ?? String(e)}`, { origin: q.origin, query: q.name });
      })
      .finally(() => this.inFlight--);
  }

  private sendAnswer(q: QueryMessage, originAddr: string, value: Uint8Array | string | undefined, deadlineMs: number): void {
    if (value === undefined || this.closed) return;
    if (typeof value !== 'string' && !(value instanceof Uint8Array)) {
      this.stats.answersFailed++;
      this.log.warn(`answer to query ${JSON.stringify(q.name)} not sent: the handler must return a Uint8Array, a string or undefined`, { query: q.name });
      return;
    }
    const payload = typeof value === 'string' ? utf8.encode(value) : value;
    if (payload.length > ANSWER_BYTES_MAX) {
      this.stats.answersOversized++;
      this.log.warn(`answer to query ${JSON.stringify(q.name)} from ${q.origin} not sent: it is ${payload.length} bytes, limit is ${ANSWER_BYTES_MAX}`, {
        query: q.name, origin: q.origin, size: payload.length, limit: ANSWER_BYTES_MAX,
      });
      return;
    }
    if (Date.now() > deadlineMs) {
      this.stats.answersLate++;
      return;
    }
    const answer: AnswerMessage = { lamport: q.lamport, id: q.id, from: this.member.name, payload };
    if (q.origin === this.member.name) {
      this.stats.answersSent++;
      this.handleAnswer(answer);
      return;
    }
    const bytes = encodeAnswer(answer);
    try {
      this.channel.send(originAddr, bytes, bytes.length > this.channel.datagramBytesMax);
      this.stats.answersSent++;
    } catch (e) {
      this.stats.answersFailed++;
      this.log.warn(`answer to query ${JSON.stringify(q.name)} from ${q.origin} not sent: ${(e as Error).message}`, { query: q.name, origin: q.origin });
    }
  }

  /** serf's handleQueryResponse: only for a query still open here, and each member's first answer. */
  private handleAnswer(a: AnswerMessage): void {
    const open = this.open.get(`${this.member.name} ${a.lamport} ${a.id}`);
    if (open === undefined || (a.from !== this.member.name && this.member.member(a.from) === undefined)) {
      this.stats.answersUnsolicited++;
      return;
    }
    if (open.answered.has(a.from)) {
      this.stats.answersDuplicate++;
      return;
    }
    open.answered.add(a.from);
    this.stats.answersReceived++;
    open.push({ from: a.from, payload: a.payload });
    if ([...open.expected].every((name) => open.answered.has(name))) open.end();
  }

  private gossip(key: string, raw: Uint8Array): void {
    try {
      this.channel.broadcast(key, raw);
    } catch {
      this.stats.messagesBad++; // over our datagram limit (a peer with a larger packet size): not relayed
    }
  }
}

const queryKey = (q: QueryMessage): string => `${q.origin} ${q.lamport} ${q.id}`;

function passes(name: string, meta: Readonly<Record<string, string>>, nodes: readonly string[] | undefined, tags: [string, (text: string) => boolean][] | undefined): boolean {
  if (nodes !== undefined && !nodes.includes(name)) return false;
  if (tags === undefined) return true;
  return tags.every(([tag, matches]) => matches(Object.hasOwn(meta, tag) ? (meta[tag] as string) : ''));
}

/** Compiles tag filters; a pattern that does not compile matches nothing (serf's shouldProcessQuery), or throws at the origin. */
function compileTags(tags: [string, string][] | undefined, lenient = false): [string, (text: string) => boolean][] | undefined {
  if (tags === undefined) return undefined;
  return tags.map(([tag, pattern]) => {
    try {
      return [tag, compileRe2(pattern, { insts: PATTERN_INSTS_MAX }, (code, expr) => {
        throw new InvalidOptionError(`tags.${tag}`, `error parsing regexp: ${code}: \`${expr}\``);
      })];
    } catch (e) {
      if (!lenient) throw e;
      return [tag, () => false];
    }
  });
}

function checkName(name: unknown): asserts name is string {
  if (typeof name !== 'string' || name.length === 0 || utf8Bytes(name) > QUERY_NAME_BYTES_MAX) {
    throw new InvalidOptionError('name', `must be a non-empty string of at most ${QUERY_NAME_BYTES_MAX} UTF-8 bytes`);
  }
}

function payloadBytes(payload: unknown, what: string): Uint8Array {
  if (payload === undefined) return new Uint8Array(0);
  if (typeof payload === 'string') return utf8.encode(payload);
  if (payload instanceof Uint8Array) return payload;
  throw new InvalidOptionError(what, 'must be a Uint8Array or a string');
}

function checkNodes(nodes: unknown): string[] | undefined {
  if (nodes === undefined) return undefined;
  if (!Array.isArray(nodes) || !nodes.every((n) => typeof n === 'string' && n.length > 0)) throw new InvalidOptionError('nodes', 'must be an array of member names');
  return [...nodes] as string[];
}

function checkTags(tags: unknown): [string, string][] | undefined {
  if (tags === undefined) return undefined;
  if (tags === null || typeof tags !== 'object' || Array.isArray(tags)) throw new InvalidOptionError('tags', 'must be an object of tag name to regular expression');
  const entries = Object.entries(tags as Record<string, unknown>);
  if (entries.length > TAG_FILTERS_MAX) throw new InvalidOptionError('tags', `at most ${TAG_FILTERS_MAX} tag filters`);
  for (const [tag, pattern] of entries) {
    if (tag.length === 0) throw new InvalidOptionError('tags', 'tag names must not be empty');
    if (typeof pattern !== 'string' || pattern.length > TAG_PATTERN_CHARS_MAX) throw new InvalidOptionError(`tags.${tag}`, `must be a regular expression of at most ${TAG_PATTERN_CHARS_MAX} characters`);
  }
  const out = entries as [string, string][];
  compileTags(out); // throws InvalidOptionError for a pattern that does not compile
  return out;
}

function checkTimeout(ms: unknown): number {
  if (typeof ms !== 'number' || !Number.isInteger(ms) || ms < 1 || ms > QUERY_TIMEOUT_MS_MAX) {
    throw new InvalidOptionError('timeoutMs', `must be an integer number of ms in 1..${QUERY_TIMEOUT_MS_MAX}`);
  }
  return ms;
}

/** The option's value as prepare() leaves it: the gossip interval the default timeout is counted in. */
interface Prepared {
  gossipIntervalMs: number;
}

function checkValue(value: unknown): void {
  if (value !== true && value !== false && value !== undefined && !isPrepared(value)) throw new InvalidOptionError('queries', 'must be true or false');
}

const isPrepared = (v: unknown): v is Prepared =>
  v !== null && typeof v === 'object' && typeof (v as Prepared).gossipIntervalMs === 'number' && Number.isFinite((v as Prepared).gossipIntervalMs);

export const serveQueries: ExtensionStarter = Object.assign(async (member: Grapevine, value: unknown, { logger }: ExtensionContext): Promise<Extension> => {
  checkValue(value);
  const gossipIntervalMs = isPrepared(value) ? value.gossipIntervalMs : GOSSIP_INTERVAL_MS_DEFAULT;
  const channel = member.channel(APP_CHANNELS.queries);
  const room = new QueryRoom(member, channel, gossipIntervalMs, logger);
  channel.onMessage((_now, from, payload, kind) => room.onMessage(from, payload, kind));
  rooms.set(member, room);
  return {
    stats: room.stats,
    close: async () => {
      room.close();
      channel.onMessage(undefined);
      rooms.set(member, undefined);
    },
  };
}, {
  check: checkValue,
  /** Reads the gossip interval from the start options (the room cannot see the member's config). */
  prepare: async (value: unknown, options: GrapevineOptions): Promise<GrapevineOptions> => {
    checkValue(value);
    const config = resolveConfig({ ...(options.protocol ?? {}), ...(options.profile !== undefined ? { profile: options.profile } : {}) });
    // The value the starter gets: true, with the interval it cannot read elsewhere (not a public option shape).
    return { ...options, queries: { gossipIntervalMs: config.gossipIntervalMs } satisfies Prepared } as unknown as GrapevineOptions;
  },
});
