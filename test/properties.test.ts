/**
 * Properties of the member-state rules and the core. fast-check prints the seed and shrunk
 * counterexample of any failure; rerun with `fc.assert(..., { seed, path })` to replay it.
 */
import { test as propTest } from '@fast-check/vitest';
import fc from 'fast-check';
import { describe, expect, test } from 'vitest';
import { Simulation } from '../sim/engine.js';
import { converged, InvariantChecker } from '../sim/invariants.js';
import { Membership } from '../src/core/membership.js';
import { bytesEqual, type Identity, identityNewer, livenessNewer } from '../src/core/members.js';
import { seededRng } from '../src/core/rng.js';
import { decodePacket, encodePacket, MemberState, MessageType, type Message, withRecord } from '../src/core/wire.js';
import { LIMITS, normalize } from './arbitraries.js';

/**
 * The core merges each member's facts by keeping the newer of two, with `livenessNewer` for
 * (incarnation, state) and `identityNewer` for (aliveIncarnation, version, addr, digest): the very
 * functions transitions.ts calls. Keeping the newer is a semilattice join (commutative,
 * associative, idempotent) exactly when "newer" is a strict total order, which is what these
 * properties check; the delivery-order properties below then run the core itself.
 */
const liveness = fc.record({
  incarnation: fc.integer({ min: 0, max: 4 }),
  state: fc.constantFrom(MemberState.Alive, MemberState.Suspect, MemberState.Dead, MemberState.Left),
});
type Liveness = { incarnation: number; state: MemberState };
const newerL = (a: Liveness, b: Liveness): boolean => livenessNewer(a.incarnation, a.state, b.incarnation, b.state);
const identity: fc.Arbitrary<Identity> = fc.record({
  aliveIncarnation: fc.integer({ min: -1, max: 4 }),
  version: fc.integer({ min: 0, max: 2 }),
  addr: fc.option(fc.constantFrom('a:1', 'b:1', 'c:1'), { nil: undefined }),
  digest: fc.uint8Array({ maxLength: 2 }),
});
const sameIdentity = (a: Identity, b: Identity): boolean =>
  a.aliveIncarnation === b.aliveIncarnation && a.version === b.version && (a.addr ?? '') === (b.addr ?? '') && bytesEqual(a.digest, b.digest);

describe('the merge orders the core runs are strict total orders (so merging is a semilattice join)', () => {
  propTest.prop([liveness, liveness, liveness])('livenessNewer: irreflexive, asymmetric, transitive, total', (a, b, c) => {
    expect(newerL(a, a)).toBe(false);
    expect(newerL(a, b) && newerL(b, a)).toBe(false);
    if (newerL(a, b) && newerL(b, c)) expect(newerL(a, c)).toBe(true);
    if (a.incarnation !== b.incarnation || a.state !== b.state) expect(newerL(a, b) || newerL(b, a)).toBe(true);
  });
  propTest.prop([identity, identity, identity])('identityNewer: irreflexive, asymmetric, transitive, total', (a, b, c) => {
    expect(identityNewer(a, a)).toBe(false);
    expect(identityNewer(a, b) && identityNewer(b, a)).toBe(false);
    if (identityNewer(a, b) && identityNewer(b, c)) expect(identityNewer(a, c)).toBe(true);
    if (!sameIdentity(a, b)) expect(identityNewer(a, b) || identityNewer(b, a)).toBe(true);
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
  ])('any delivery order of the same updates, with repeats, gives every core the same member table', (updates, orderSeeds) => {
    const tables = orderSeeds.map((orderSeed, i) => {
      const core = new Membership({ name: `o${i}`, addr: `o${i}`, rng: seededRng(orderSeed), nowMs: 0 });
      const order = fc.sample(fc.shuffledSubarray(updates, { minLength: updates.length, maxLength: updates.length }), { seed: orderSeed, numRuns: 1 })[0] ?? updates;
      // Gossip repeats itself: the second and third cores also get some messages again (idempotence).
      const repeats = i === 0 ? [] : order.filter((_, j) => (j + orderSeed) % (i + 1) === 0);
      for (const m of [...order, ...repeats]) core.handleDatagram(0, 'peer', encodePacket([m]));
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
    'the protocol invariants hold through crashes, restarts, partitions and pauses (sim/invariants.ts)',
    (seed, faults) => {
      const h = new Simulation({ seed, network: { lossRate: 0.05 } });
      h.startCluster(5);
      const invariants = new InvariantChecker(h);
      const check = (): void => {
        invariants.check();
        expect(invariants.ok, invariants.report(`seed ${seed}, faults ${JSON.stringify(faults)}`)).toBe(true);
      };
      let heal: (() => void) | undefined;
      for (const [fault, which] of faults) {
        const name = `n${which}`;
        if (fault === 'crash') h.crash(name);
        else if (fault === 'restart' && !h.node(name).up) {
          h.restart(name);
          h.join(name, ['n0']);
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
  function suspectedPair(pauseToleranceMs = 0): Membership {
    const core = new Membership({ name: 'a', addr: 'a', rng: seededRng(3), nowMs: 0, config: { pushPullIntervalMs: 0, pauseToleranceMs } });
    core.handleDatagram(0, 'b', encodePacket([{ type: MessageType.Alive, node: 'b', incarnation: 0, addr: 'b', ...withRecord() }]));
    core.handleDatagram(0, 'c', encodePacket([{ type: MessageType.Suspect, node: 'b', incarnation: 0, from: 'c' }]));
    expect(core.member('b')?.state).toBe('suspect');
    return core;
  }

  test('a suspicion that expires on time declares death', () => {
    const core = suspectedPair();
    core.handleTimeout(4_000); // memberlist's bounds, 2 live members: the 4 s minimum, no confirmations wanted
    expect(core.member('b')?.state).toBe('dead');
  });

  test('with a pause tolerance (the LAN default), an expired suspicion is first put to the suspect, twice; only silence is a death', () => {
    const suspectsTo = (core: Membership): number => {
      let n = 0;
      for (let t = core.pollTransmit(); t !== undefined; t = core.pollTransmit()) {
        const d = t.addr === 'b' && !t.stream ? decodePacket(t.bytes, LIMITS) : undefined;
        // Bare: a probe of a suspect carries the suspicion too (the buddy system), beside its ping.
        if (d?.ok === true && d.messages.length === 1 && d.messages.every((m) => m.type === MessageType.Suspect && m.node === 'b' && m.from === 'a')) n++;
      }
      return n;
    };
    const silent = suspectedPair(3_000);
    suspectsTo(silent);
    silent.handleTimeout(2_700); // 3 s - 500 ms probe timeout + 200 ms gossip interval
    expect(silent.member('b')?.state).toBe('suspect');
    expect(suspectsTo(silent)).toBe(1);
    silent.handleTimeout(2_950);
    expect(suspectsTo(silent)).toBe(1);
    expect(silent.member('b')?.state).toBe('suspect');
    silent.handleTimeout(3_200);
    expect(silent.member('b')?.state).toBe('dead');
    expect(silent.stats.verifications).toBe(2);

    const answering = suspectedPair(3_000);
    answering.handleTimeout(2_700);
    answering.handleDatagram(2_710, 'b', encodePacket([{ type: MessageType.Alive, node: 'b', incarnation: 1, addr: 'b', ...withRecord() }]));
    answering.handleTimeout(3_200);
    expect(answering.member('b')?.state).toBe('alive');
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

/** Anything an unauthenticated sender may say about the members, at any incarnation. */
const SUBJECTS = ['n0', 'n1', 'n2', 'n3', 'n4', 'ghost'];
const anyIncarnation = fc.oneof(
  fc.integer({ min: 0, max: 8 }),
  fc.constantFrom(0x7fff_ffff, 0x8000_0000, 0x8000_0001, 0xffff_fffe, 0xffff_ffff),
  fc.integer({ min: 0, max: 0xffff_ffff }),
);
const forged: fc.Arbitrary<Message> = fc.oneof(
  fc.record({ type: fc.constant(MessageType.Suspect), node: fc.constantFrom(...SUBJECTS), incarnation: anyIncarnation, from: fc.constantFrom('x', 'n1') }),
  fc.record({ type: fc.constant(MessageType.Dead), node: fc.constantFrom(...SUBJECTS), incarnation: anyIncarnation }),
  fc.record({ type: fc.constant(MessageType.Left), node: fc.constantFrom(...SUBJECTS), incarnation: anyIncarnation }),
  fc.record({
    type: fc.constant(MessageType.Alive), node: fc.constantFrom(...SUBJECTS), incarnation: anyIncarnation,
    addr: fc.constantFrom(...SUBJECTS), version: fc.constantFrom(0, 1, 0xffff_ffff),
  }).map((m) => ({ ...m, ...withRecord(new Uint8Array(0), m.version) })),
) as fc.Arbitrary<Message>;

describe('an adversary cannot keep a live member dead', () => {
  propTest.prop([
    fc.integer({ min: 0, max: 2 ** 31 - 1 }),
    fc.array(fc.tuple(fc.integer({ min: 0, max: 4 }), fc.integer({ min: 0, max: 2_000 }), forged), { minLength: 1, maxLength: 20 }),
  ], { numRuns: 300 })('whatever it sends, once it stops every running member is alive everywhere again', (seed, attack) => {
    const h = new Simulation({ seed });
    h.startCluster(5);
    h.runFor(5_000);
    for (const [to, delayMs, message] of attack) {
      h.runFor(delayMs);
      h.inject(`n${to}`, 'x', encodePacket([message]));
    }
    // Phantoms die within the suspicion maximum (24 s here); refutations spread by gossip and push-pull.
    const settled = h.runUntilTrue(() => converged(h), 180_000);
    const views = h.liveNodes().map((n) => `${n.name}: ${n.core.members().map((m) => `${m.name}=${m.state}@${m.incarnation}`).join(' ')}`);
    expect(settled, `seed ${seed}, attack ${JSON.stringify(attack)}\n${views.join('\n')}`).toBe(true);
  });
});
