/**
 * Properties of the member-state rules and the core. fast-check prints the seed and shrunk
 * counterexample of any failure; rerun with `fc.assert(..., { seed, path })` to replay it.
 */
import { test as propTest } from '@fast-check/vitest';
import fc from 'fast-check';
import { describe, expect, test } from 'vitest';
import { Simulation } from '../sim/engine.js';
import { Membership } from '../src/core/membership.js';
import { mergeFacts, type MemberFacts } from '../src/core/members.js';
import { seededRng } from '../src/core/rng.js';
import { encodePacket, MemberState, MessageType, type Message, withRecord } from '../src/core/wire.js';
import { normalize } from './arbitraries.js';

const facts: fc.Arbitrary<MemberFacts> = fc
  .record({
    incarnation: fc.integer({ min: 0, max: 4 }),
    state: fc.constantFrom(MemberState.Alive, MemberState.Suspect, MemberState.Dead, MemberState.Left),
    aliveIncarnation: fc.integer({ min: -1, max: 4 }),
    version: fc.integer({ min: 0, max: 2 }),
    addr: fc.option(fc.constantFrom('a:1', 'b:1', 'c:1'), { nil: undefined }),
    digest: fc.uint8Array({ maxLength: 2 }),
  })
  .map((f) => (f.aliveIncarnation < 0 ? { ...f, version: 0, addr: undefined, digest: new Uint8Array(0) } : f));

describe('member-state merge is a semilattice join', () => {
  propTest.prop([facts, facts])('commutative', (a, b) => {
    expect(normalize(mergeFacts(a, b))).toEqual(normalize(mergeFacts(b, a)));
  });
  propTest.prop([facts, facts, facts])('associative', (a, b, c) => {
    expect(normalize(mergeFacts(mergeFacts(a, b), c))).toEqual(normalize(mergeFacts(a, mergeFacts(b, c))));
  });
  propTest.prop([facts])('idempotent', (a) => {
    expect(normalize(mergeFacts(a, a))).toEqual(normalize(a));
  });
});

/** Gossip about members s0..s3, which are not the observers. */
const update: fc.Arbitrary<Message> = fc.oneof(
  fc.record({
    type: fc.constant(MessageType.Alive), node: fc.constantFrom('s0', 's1', 's2', 's3'),
    incarnation: fc.integer({ min: 0, max: 3 }), addr: fc.constantFrom('x:1', 'y:1'),
    meta: fc.uint8Array({ maxLength: 1 }), version: fc.integer({ min: 0, max: 2 }),
  }).map((m) => ({ ...m, ...withRecord(m.meta, m.version) })),
  fc.record({
    type: fc.constant(MessageType.Suspect), node: fc.constantFrom('s0', 's1', 's2', 's3'),
    incarnation: fc.integer({ min: 0, max: 3 }), from: fc.constantFrom('o0', 'o1', 'o2'),
  }),
  fc.record({ type: fc.constant(MessageType.Dead), node: fc.constantFrom('s0', 's1', 's2', 's3'), incarnation: fc.integer({ min: 0, max: 3 }) }),
  fc.record({ type: fc.constant(MessageType.Left), node: fc.constantFrom('s0', 's1', 's2', 's3'), incarnation: fc.integer({ min: 0, max: 3 }) }),
) as fc.Arbitrary<Message>;

function table(core: Membership): unknown {
  return normalize(core.members()
    .filter((m) => m.name !== core.name)
    .map(({ name, addr, record, version, incarnation, state }) => ({ name, addr, record, version, incarnation, state }))
    .sort((a, b) => (a.name < b.name ? -1 : 1)));
}

describe('core properties', () => {
  propTest.prop([
    fc.array(update, { minLength: 1, maxLength: 25 }),
    fc.array(fc.nat(), { minLength: 3, maxLength: 3 }),
  ])('any delivery order of the same updates gives every core the same member table', (updates, orderSeeds) => {
    const tables = orderSeeds.map((orderSeed, i) => {
      const core = new Membership({ name: `o${i}`, addr: `o${i}`, rng: seededRng(orderSeed), nowMs: 0 });
      const order = fc.sample(fc.shuffledSubarray(updates, { minLength: updates.length, maxLength: updates.length }), { seed: orderSeed, numRuns: 1 })[0] ?? updates;
      for (const m of order) core.handleDatagram(0, 'peer', encodePacket([m]));
      return table(core);
    });
    expect(tables[1]).toEqual(tables[0]);
    expect(tables[2]).toEqual(tables[0]);
  });

  /** Gossip about the core itself: any claims, any incarnations, any order. */
  const aboutSelf: fc.Arbitrary<Message> = fc.oneof(
    fc.record({ type: fc.constant(MessageType.Suspect), node: fc.constant('me'), incarnation: fc.integer({ min: 0, max: 50 }), from: fc.constant('x') }),
    fc.record({ type: fc.constant(MessageType.Dead), node: fc.constant('me'), incarnation: fc.integer({ min: 0, max: 50 }) }),
    fc.record({ type: fc.constant(MessageType.Left), node: fc.constant('me'), incarnation: fc.integer({ min: 0, max: 50 }) }),
    fc.record({
      type: fc.constant(MessageType.Alive), node: fc.constant('me'), incarnation: fc.integer({ min: 0, max: 50 }),
      addr: fc.constantFrom('me', 'other'), meta: fc.uint8Array({ maxLength: 1 }),
    }),
  ) as fc.Arbitrary<Message>;

  propTest.prop([fc.array(aboutSelf, { minLength: 1, maxLength: 30 }), fc.nat()])(
    'a live node never accepts its own death: it refutes, and its incarnation only grows',
    (claims, seed) => {
      const core = new Membership({ name: 'me', addr: 'me', rng: seededRng(seed), nowMs: 0 });
      let last = core.incarnation;
      for (const claim of claims) {
        core.handleDatagram(0, 'x', encodePacket([claim]));
        const self = core.member('me');
        expect(self?.state).toBe('alive');
        expect(core.incarnation).toBeGreaterThanOrEqual(last);
        if (claim.type !== MessageType.Alive && claim.type !== MessageType.Ping) {
          const claimed = (claim as { incarnation: number }).incarnation;
          if (claimed >= last) expect(core.incarnation).toBeGreaterThan(claimed);
        }
        last = core.incarnation;
      }
    },
  );

  propTest.prop([fc.integer({ min: 0, max: 2 ** 31 }), fc.array(fc.tuple(fc.constantFrom('crash', 'restart', 'cut', 'heal', 'pause'), fc.integer({ min: 1, max: 4 })), { maxLength: 6 })], { numRuns: 15 })(
    'no observer ever sees a member\'s incarnation go down, through crashes, restarts, partitions and pauses',
    (seed, faults) => {
      const h = new Simulation({ seed, network: { lossRate: 0.05 } });
      h.startCluster(5);
      const seen = new Map<string, number>();
      const check = (): void => {
        for (const n of h.liveNodes()) {
          for (const m of n.core.members()) {
            if (m.name === n.name) continue;
            const key = `${n.name}/${m.name}`;
            const before = seen.get(key) ?? -1;
            expect(m.incarnation, `seed ${seed}: ${key}`).toBeGreaterThanOrEqual(before);
            seen.set(key, m.incarnation);
          }
        }
      };
      let heal: (() => void) | undefined;
      for (const [fault, which] of faults) {
        const name = `n${which}`;
        if (fault === 'crash') h.crash(name);
        else if (fault === 'restart' && !h.node(name).up) {
          h.restart(name);
          h.join(name, ['n0']);
          for (const key of [...seen.keys()]) if (key.startsWith(`${name}/`)) seen.delete(key); // a new process starts afresh
        } else if (fault === 'cut' && heal === undefined) heal = h.partition([name], ['n0', 'n1', 'n2', 'n3', 'n4'].filter((x) => x !== name));
        else if (fault === 'heal') {
          heal?.();
          heal = undefined;
        } else if (fault === 'pause') h.pause(name, 2_000);
        for (let t = 0; t < 40; t++) {
          h.runFor(250);
          check();
        }
      }
    },
  );
});

describe('stall grace, called directly', () => {
  function suspectedPair(): Membership {
    const core = new Membership({ name: 'a', addr: 'a', rng: seededRng(3), nowMs: 0, config: { pushPullIntervalMs: 0 } });
    core.handleDatagram(0, 'b', encodePacket([{ type: MessageType.Alive, node: 'b', incarnation: 0, addr: 'b', ...withRecord() }]));
    core.handleDatagram(0, 'c', encodePacket([{ type: MessageType.Suspect, node: 'b', incarnation: 0, from: 'c' }]));
    expect(core.member('b')?.state).toBe('suspect');
    return core;
  }

  test('a suspicion that expires on time declares death', () => {
    const core = suspectedPair();
    core.handleTimeout(4_000); // 2 live members: the 4 s minimum, no confirmations wanted
    expect(core.member('b')?.state).toBe('dead');
  });

  test('a suspicion found expired long after its deadline waits for queued input first', () => {
    const core = suspectedPair();
    core.handleTimeout(7_000); // the loop was stalled for 3 s past the deadline
    expect(core.member('b')?.state).toBe('suspect');
    core.handleDatagram(7_001, 'b', encodePacket([{ type: MessageType.Alive, node: 'b', incarnation: 1, addr: 'b', ...withRecord() }]));
    core.handleTimeout(7_010);
    expect(core.member('b')?.state).toBe('alive');
  });
});
