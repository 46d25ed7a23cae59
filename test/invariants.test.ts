/** The invariant checker itself: it must flag what breaks an invariant and nothing that does not. */
import { describe, expect, test } from 'vitest';
import type { MembershipEvent } from '../src/core/context.js';
import type { MemberInfo } from '../src/core/members.js';
import type { SimNode, Simulation } from '../sim/engine.js';
import { InvariantChecker } from '../sim/invariants.js';

/** A stand-in simulation with one observer whose events the test emits by hand. */
function fake(selfState: MemberInfo['state'] = 'alive') {
  let listener: ((node: SimNode, event: MembershipEvent, atMs: number) => void) | undefined;
  const core = { member: () => ({ name: 'o', state: selfState, incarnation: 0 }), stats: { eventsDropped: 0 } };
  const node = { name: 'o', up: true, core } as unknown as SimNode;
  const sim = {
    nowMs: 0, nodes: new Map([['o', node]]),
    onEvent: (l: typeof listener) => {
      listener = l;
      return () => undefined;
    },
  } as unknown as Simulation;
  const checker = new InvariantChecker(sim);
  const emit = (type: MembershipEvent['type'], state: MemberInfo['state'], incarnation: number, version = 0): void => {
    const member: MemberInfo = { name: 'm', addr: 'm', record: new Uint8Array(0), version, incarnation, state, stateChangeMs: 0 };
    listener?.(node, { type, member } as MembershipEvent, 1);
  };
  return { checker, emit };
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
});
