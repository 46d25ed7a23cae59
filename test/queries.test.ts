/**
 * Queries (src/queries/, serf's `serf query`) between real members on 127.0.0.1: every member
 * answers once though the query reaches it several times, node and tag filters select who
 * answers, the timeout ends the iteration, answers larger than a datagram arrive over streams,
 * oversized queries and answers are refused naming the limit, a forged query whose origin is not
 * a member at that address makes nobody send anything there, and with a keyring a query in clear
 * is dropped unheard. Every wait is bounded.
 */
import { createSocket, type Socket } from 'node:dgram';
import { Packr } from 'msgpackr/pack';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { ANSWER_BYTES_MAX, APP_CHANNELS, encodePacket, Grapevine, InvalidOptionError, InvalidStateError, type Logger, MessageType, OversizedError, type QueryAnswer } from '../src/index.js';
import { until } from './until.js';

const text = (s: string): Uint8Array => new TextEncoder().encode(s);
const str = (b: Uint8Array): string => new TextDecoder().decode(b);
const packr = new Packr({ useRecords: false, variableMapSize: true });

async function collect(answers: AsyncIterable<QueryAnswer>): Promise<QueryAnswer[]> {
  const out: QueryAnswer[] = [];
  for await (const a of answers) out.push(a);
  return out;
}

const froms = (answers: QueryAnswer[]): string[] => answers.map((a) => a.from).sort();
const counter = (gv: Grapevine, name: string): number => gv.stats().interfaces.queries?.[name] ?? 0;
const portOf = (addr: string): number => Number(addr.slice(addr.lastIndexOf(':') + 1));

/** A query as a peer would gossip it, built here from the wire layout (src/queries/messages.ts), not with the room's encoder. */
function craftQuery(origin: string, originAddr: string, name: string, id: number): Uint8Array {
  const payload = packr.pack([0, 1_000_000 + id, id, origin, originAddr, name, text('forged?'), null, null, 5_000]);
  return encodePacket([{ type: MessageType.App, channel: APP_CHANNELS.queries, payload, kind: 0 }]);
}

async function udpSocket(): Promise<{ socket: Socket; addr: string; heard: Uint8Array[] }> {
  const socket = createSocket('udp4');
  const heard: Uint8Array[] = [];
  socket.on('message', (m) => heard.push(m));
  await new Promise<void>((r) => socket.bind(0, '127.0.0.1', () => r()));
  return { socket, addr: `127.0.0.1:${socket.address().port}`, heard };
}

const send = (socket: Socket, bytes: Uint8Array, to: string): Promise<void> =>
  new Promise<void>((r) => socket.send(bytes, portOf(to), '127.0.0.1', () => r()));

describe('queries', () => {
  const members: Grapevine[] = [];
  const warnings: string[] = [];
  const metas = [{ role: 'web', zone: 'zone-a' }, { role: 'db', zone: 'zone-a' }, { role: 'web', zone: 'zone-b' }, { role: 'db' }];

  beforeAll(async () => {
    const quiet = (): void => undefined;
    const logger: Logger = { debug: quiet, info: quiet, warn: (m) => warnings.push(m), error: (m) => warnings.push(m) };
    for (let i = 0; i < 4; i++) {
      members.push(await Grapevine.start({
        name: `q${i}`, bind: '127.0.0.1:0', profile: 'local', meta: metas[i] as Record<string, string>, logger,
        ...(i > 0 ? { seeds: [members[0]?.address as string] } : {}),
      }));
    }
    await until(() => members.every((m) => m.members().length === 4 && m.members().every((x) => x.state === 'alive' && Object.keys(x.meta).length > 0)));
  }, 30_000);

  afterAll(async () => {
    await Promise.all(members.map((m) => m.close()));
  });

  test('a query gets one answer from every member, none twice, though it reaches each several times; it ends once all have answered', async () => {
    const calls = [0, 0, 0, 0];
    const stops = members.map((m, i) => m.answer('who', (payload, q) => {
      calls[i] = (calls[i] ?? 0) + 1;
      return `${m.name} heard ${str(payload)} from ${q.from} (${q.name})`;
    }));
    try {
      const q2 = members[2] as Grapevine;
      const started = Date.now();
      const answers = await collect(q2.query('who', 'hello', { timeoutMs: 8_000 }));
      expect(Date.now() - started).toBeLessThan(8_000); // ended by the last answer, not the timeout
      expect(froms(answers)).toEqual(['q0', 'q1', 'q2', 'q3']);
      expect(answers.find((a) => a.from === 'q1')?.payload).toEqual(text('q1 heard hello from q2 (who)'));
      // The query keeps coming back by gossip (each member relays it its retransmit count): repeats are recognised, never answered.
      await until(() => members.reduce((n, m) => n + counter(m, 'queriesDuplicate'), 0) > 0, 5_000);
      await new Promise((r) => setTimeout(r, 500));
      expect(calls).toEqual([1, 1, 1, 1]);
      expect(members.reduce((n, m) => n + counter(m, 'answersDuplicate'), 0)).toBe(0);
    } finally {
      stops.forEach((stop) => stop());
    }
  });

  test('node and tag filters: only the members named, or whose metadata matches every pattern, answer', async () => {
    const stops = members.map((m) => m.answer('filtered', () => m.name));
    try {
      const q0 = members[0] as Grapevine;
      expect(froms(await collect(q0.query('filtered', undefined, { nodes: ['q1', 'q3'], timeoutMs: 8_000 })))).toEqual(['q1', 'q3']);
      expect(froms(await collect(q0.query('filtered', undefined, { tags: { role: '^db$' }, timeoutMs: 8_000 })))).toEqual(['q1', 'q3']);
      // Unanchored, as Go's regexp.MatchString; every tag must match; a tag a member lacks is matched as "".
      expect(froms(await collect(q0.query('filtered', undefined, { tags: { zone: 'a$', role: 'we' }, timeoutMs: 8_000 })))).toEqual(['q0']);
      expect(froms(await collect(q0.query('filtered', undefined, { tags: { zone: '^$' }, timeoutMs: 8_000 })))).toEqual(['q3']);
      expect(() => q0.query('filtered', undefined, { tags: { role: '(' } })).toThrow(InvalidOptionError);
      expect(() => q0.query('filtered', undefined, { tags: { role: '(?=x)' } })).toThrow(/tags\.role/);
    } finally {
      stops.forEach((stop) => stop());
    }
  });

  test('the timeout ends the iteration: with no answer at all, and after the only answer when others stay silent', async () => {
    const q1 = members[1] as Grapevine;
    let started = Date.now();
    expect(await collect(q1.query('nobody-answers', undefined, { timeoutMs: 400 }))).toEqual([]);
    expect(Date.now() - started).toBeGreaterThanOrEqual(380);
    expect(Date.now() - started).toBeLessThan(3_000);
    const stop = (members[3] as Grapevine).answer('one-answers', () => 'only me');
    try {
      started = Date.now();
      const answers = await collect(q1.query('one-answers', undefined, { timeoutMs: 700 }));
      expect(froms(answers)).toEqual(['q3']);
      expect(Date.now() - started).toBeGreaterThanOrEqual(680);
      expect(Date.now() - started).toBeLessThan(3_000);
      // An abort ends it sooner.
      const abort = new AbortController();
      setTimeout(() => abort.abort(), 200);
      started = Date.now();
      await collect(q1.query('nobody-answers', undefined, { timeoutMs: 10_000, signal: abort.signal }));
      expect(Date.now() - started).toBeLessThan(3_000);
    } finally {
      stop();
    }
  });

  test('answers larger than a datagram arrive whole (over streams); an answer over the limit is not sent, and the warning names the limit', async () => {
    const big = new Uint8Array(20_000).map((_, i) => (i * 7) % 251);
    const stops = [
      (members[1] as Grapevine).answer('big', () => big),
      (members[2] as Grapevine).answer('big', () => new Uint8Array(ANSWER_BYTES_MAX + 1)),
      (members[3] as Grapevine).answer('big', async () => 'small'),
    ];
    try {
      expect(big.length).toBeGreaterThan((members[1] as Grapevine).channel(APP_CHANNELS.queries).datagramBytesMax);
      const answers = await collect((members[0] as Grapevine).query('big', undefined, { timeoutMs: 1_500 }));
      expect(froms(answers)).toEqual(['q1', 'q3']);
      expect(answers.find((a) => a.from === 'q1')?.payload).toEqual(big);
      expect(warnings.some((w) => w.includes(`is ${ANSWER_BYTES_MAX + 1} bytes, limit is ${ANSWER_BYTES_MAX}`))).toBe(true);
      expect(counter(members[2] as Grapevine, 'answersOversized')).toBe(1);
    } finally {
      stops.forEach((stop) => stop());
    }
  });

  test('a query that does not fit a datagram is refused at once, naming the limit; bad arguments are InvalidOptionError', () => {
    const q0 = members[0] as Grapevine;
    const limit = q0.channel(APP_CHANNELS.queries).datagramBytesMax;
    let error: unknown;
    try {
      q0.query('huge', new Uint8Array(limit));
    } catch (e) {
      error = e;
    }
    expect(error).toBeInstanceOf(OversizedError);
    expect((error as OversizedError).limit).toBe(limit);
    expect((error as Error).message).toMatch(new RegExp(`^query is \\d+ bytes, limit is ${limit}$`));
    expect(() => q0.query('', undefined)).toThrow(InvalidOptionError);
    expect(() => q0.query('x', undefined, { timeoutMs: 0 })).toThrow(/timeoutMs/);
    expect(() => q0.answer('x', 'not a function' as never)).toThrow(InvalidOptionError);
    const stop = q0.answer('twice', () => undefined);
    expect(() => q0.answer('twice', () => undefined)).toThrow(InvalidStateError);
    stop();
    q0.answer('twice', () => undefined)();
  });

  test('a forged query whose origin is not a live member at that address makes nobody send anything there', async () => {
    const [q0, q1] = members as [Grapevine, Grapevine];
    const calls: string[] = [];
    const stops = members.map((m) => m.answer('forged', (_p, q) => {
      calls.push(`${m.name} for ${q.from}`);
      return 'an answer the size of a reflection attack'.repeat(20);
    }));
    const fake = await udpSocket();
    try {
      const forgedBefore = counter(q1, 'queriesForged');
      // Not a member at all; and a member's name at an address that is not its own.
      await send(fake.socket, craftQuery('intruder', fake.addr, 'forged', 1), q1.address);
      await send(fake.socket, craftQuery('q0', fake.addr, 'forged', 2), q1.address);
      await until(() => counter(q1, 'queriesForged') >= forgedBefore + 2, 5_000);
      // The control, so the crafted bytes are known to be understood: the real origin at its real address is answered, there.
      await send(fake.socket, craftQuery('q0', q0.address, 'forged', 3), q1.address);
      await until(() => calls.includes('q1 for q0'), 5_000); // and relayed by gossip: answered by each that hears it, once, to q0
      await new Promise((r) => setTimeout(r, 1_000));
      expect(fake.heard).toEqual([]);
      expect(calls.every((c) => c.endsWith('for q0'))).toBe(true);
      expect(new Set(calls).size).toBe(calls.length);
    } finally {
      stops.forEach((stop) => stop());
      fake.socket.close();
    }
  });
});

describe('queries with a keyring, and turned off', () => {
  test('a query in clear from outside is dropped unheard, though it names a real member at its address', async () => {
    const key = new Uint8Array(32).fill(9);
    const k0 = await Grapevine.start({ name: 'k0', bind: '127.0.0.1:0', profile: 'local', keyring: [key] });
    const k1 = await Grapevine.start({ name: 'k1', bind: '127.0.0.1:0', profile: 'local', keyring: [key], seeds: [k0.address] });
    const fake = await udpSocket();
    try {
      await until(() => k0.members().length === 2 && k1.members().length === 2);
      const calls: string[] = [];
      k0.answer('sealed', () => 'k0');
      k1.answer('sealed', (_p, q) => {
        calls.push(q.from);
        return 'k1';
      });
      // Sealed queries work here...
      expect(froms(await collect(k0.query('sealed', undefined, { timeoutMs: 8_000 })))).toEqual(['k0', 'k1']);
      // ...and one in clear is dropped before the room hears it.
      const dropped: string[] = [];
      k1.on('dropped', (d) => dropped.push(d.reason));
      await send(fake.socket, craftQuery('k0', k0.address, 'sealed', 4), k1.address);
      await until(() => dropped.length > 0, 5_000);
      await new Promise((r) => setTimeout(r, 500));
      expect(calls).toEqual(['k0']);
      expect(counter(k1, 'messagesBad') + counter(k1, 'queriesForged')).toBe(0);
    } finally {
      fake.socket.close();
      await Promise.all([k0.close(), k1.close()]);
    }
  }, 30_000);

  test('started with queries: false, query and answer throw InvalidStateError', async () => {
    const off = await Grapevine.start({ name: 'off', bind: '127.0.0.1:0', profile: 'local', queries: false });
    try {
      expect(() => off.query('x')).toThrow(InvalidStateError);
      expect(() => off.answer('x', () => undefined)).toThrow(InvalidStateError);
      expect(off.stats().interfaces.queries).toBeUndefined();
    } finally {
      await off.close();
    }
  });
});
