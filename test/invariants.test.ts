/** The invariant checker itself: it must flag what breaks an invariant and nothing that does not. */
import { describe, expect, test } from 'vitest';
import type { MembershipEvent } from '../src/core/context.js';
import type { Membership } from '../src/core/membership.js';
import type { MemberInfo } from '../src/core/members.js';
import type { LifecycleListener, SimNode, Simulation } from '../sim/engine.js';
import { InvariantChecker } from '../sim/invariants.js';

/** A subject's core: the checker asks it only for its own table and counters. */
const bareCore = (): Membership => ({ members: () => [], member: () => undefined, stats: { eventsDropped: 0 } }) as unknown as Membership;

/** A stand-in simulation: observer o, subject m (a process of its own), events and lifecycle emitted by hand. */
function fake(selfState: MemberInfo['state'] = 'alive') {
  let listener: ((node: SimNode, event: MembershipEvent, atMs: number) => void) | undefined;
  let lifecycle: LifecycleListener | undefined;
  const core = { member: () => ({ name: 'o', state: selfState, incarnation: 0 }), members: () => [], stats: { eventsDropped: 0 } };
  const node = { name: 'o', up: true, core } as unknown as SimNode;
  const subject = { name: 'm', up: true, core: bareCore() } as unknown as SimNode;
  const sim = {
    nowMs: 0, nodes: new Map([['o', node], ['m', subject]]),
    onEvent: (l: typeof listener) => {
      listener = l;
      return () => undefined;
    },
    onLifecycle: (l: LifecycleListener) => {
      lifecycle = l;
      return () => undefined;
    },
  } as unknown as Simulation;
  const checker = new InvariantChecker(sim);
  const emit = (type: MembershipEvent['type'], state: MemberInfo['state'], incarnation: number, version = 0): void => {
    const member: MemberInfo = { name: 'm', addr: 'm', record: new Uint8Array(0), version, incarnation, state, stateChangeMs: 0 };
    listener?.(node, { type, member } as MembershipEvent, 1);
  };
  /** The subject's process stops, or a new life of it starts. */
  const subjectLife = (change: 'started' | 'stopped'): void => {
    subject.up = change === 'started';
    if (change === 'started') subject.core = bareCore();
    lifecycle?.(subject, change, subject.core);
  };
  return { checker, emit, subjectLife };
}

describe('InvariantChecker', () => {
  test('liveness that goes back is flagged; forward moves are not', () => {
    const { checker, emit } = fake();
    emit('joined', 'alive', 1);
    emit('suspect', 'suspect', 1);
    emit('alive', 'alive', 2);
    expect(checker.ok).toBe(true);
    emit('suspect', 'suspect', 1);
    expect(checker.violations.map((v) => v.invariant)).toEqual(['liveness-monotonic']);
    expect(checker.report('seed 1')).toMatch(/o saw m go from alive@2 to suspect@1[\s\S]*replay with: seed 1/);
  });

  test('an older record version is flagged; a reaped member learned again is not', () => {
    const { checker, emit } = fake();
    emit('joined', 'alive', 1, 5);
    emit('updated', 'alive', 1, 3);
    expect(checker.violations.map((v) => v.invariant)).toEqual(['identity-monotonic']);
    const again = fake();
    again.emit('joined', 'alive', 4, 2);
    again.emit('dead', 'dead', 4);
    again.emit('joined', 'alive', 0, 0); // reaped, then a new process of the same name
    expect(again.checker.ok).toBe(true);
  });

  test('a member that holds itself suspect is flagged at the next check', () => {
    const { checker } = fake('suspect');
    checker.check();
    expect(checker.violations.map((v) => v.invariant)).toEqual(['self-never-condemned']);
  });

  test('a stopped life listed alive again after it was declared over is flagged; a new life is not', () => {
    const { checker, emit, subjectLife } = fake();
    emit('joined', 'alive', 0);
    subjectLife('stopped');
    emit('suspect', 'suspect', 0);
    emit('dead', 'dead', 0);
    expect(checker.ok).toBe(true);
    emit('joined', 'alive', 0); // what a push-pull merged as alive did before issue 23
    expect(checker.violations.map((v) => v.invariant)).toEqual(['no-resurrection']);
    const again = fake();
    again.emit('joined', 'alive', 0);
    again.subjectLife('stopped');
    again.emit('dead', 'dead', 0);
    again.subjectLife('started');
    again.emit('joined', 'alive', 1);
    expect(again.checker.ok).toBe(true);
  });

  test('a second joined in one life is flagged unless a death or leave came between', () => {
    const { checker, emit } = fake();
    emit('joined', 'alive', 0);
    emit('dead', 'dead', 0);
    emit('joined', 'alive', 1); // a false death, refuted
    expect(checker.ok).toBe(true);
    emit('joined', 'alive', 1);
    expect(checker.violations.map((v) => v.invariant)).toEqual(['one-joined-per-life']);
  });
});
