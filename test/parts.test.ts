/** Unit tests of the core's small parts: broadcast queue, timer heap, RNG, suspicion, awareness. */
import { test as propTest } from '@fast-check/vitest';
import fc from 'fast-check';
import { describe, expect, test } from 'vitest';
import { Awareness } from '../src/core/awareness.js';
import { BroadcastQueue } from '../src/core/broadcast-queue.js';
import { randomInt, seededRng, shuffle } from '../src/core/rng.js';
import { Suspicion, suspicionTimeoutMs } from '../src/core/suspicion.js';
import { ProbeRound } from '../src/core/probe-round.js';
import { TimerHeap } from '../src/core/timers.js';

const bytes = (n: number, fill = n): Uint8Array => new Uint8Array(n).fill(fill);

describe('broadcast queue', () => {
  test('least-sent first, newest first among equals, retired after the limit', () => {
    const q = new BroadcastQueue();
    q.enqueue('a', bytes(10, 1));
    q.enqueue('b', bytes(10, 2));
    const out: Uint8Array[] = [];
    q.take(10, 3, out);
    expect(out.map((b) => b[0])).toEqual([2]); // b is newer
    out.length = 0;
    q.take(10, 3, out);
    expect(out.map((b) => b[0])).toEqual([1]); // a has been sent fewer times
    out.length = 0;
    for (let i = 0; i < 10; i++) q.take(100, 3, out);
    expect(out.length).toBe(4); // 3 sends each, 2 of them already done
    expect(q.size).toBe(0);
  });

  test('a newer item for the same key replaces the older one and runs its onRetire', () => {
    const q = new BroadcastQueue();
    let retired = 0;
    q.enqueue('a', bytes(5, 1), () => retired++);
    q.enqueue('a', bytes(5, 2));
    expect(retired).toBe(1);
    const out: Uint8Array[] = [];
    q.take(100, 5, out);
    expect(out.map((b) => b[0])).toEqual([2]);
  });

  test('items that do not fit are skipped, smaller ones still go', () => {
    const q = new BroadcastQueue();
    q.enqueue('big', bytes(50));
    q.enqueue('small', bytes(5));
    const out: Uint8Array[] = [];
    expect(q.take(20, 5, out)).toBe(5);
    expect(out.map((b) => b.length)).toEqual([5]);
  });

  propTest.prop([fc.array(fc.tuple(fc.constantFrom('a', 'b', 'c', 'd', 'e'), fc.integer({ min: 4, max: 60 })), { maxLength: 200 }), fc.integer({ min: 1, max: 6 })])(
    'never exceeds the budget or the limit per item, and drains completely',
    (ops, limit) => {
      const q = new BroadcastQueue();
      const sends = new Map<Uint8Array, number>();
      const out: Uint8Array[] = [];
      for (const [key, size] of ops) {
        q.enqueue(key, bytes(size));
        out.length = 0;
        expect(q.take(64, limit, out)).toBeLessThanOrEqual(64);
        for (const b of out) sends.set(b, (sends.get(b) ?? 0) + 1);
      }
      for (let i = 0; i < 100 && q.size > 0; i++) {
        out.length = 0;
        q.take(1_000, limit, out);
        for (const b of out) sends.set(b, (sends.get(b) ?? 0) + 1);
      }
      expect(q.size).toBe(0);
      for (const n of sends.values()) expect(n).toBeLessThanOrEqual(limit);
    },
  );
});

describe('timer heap', () => {
  propTest.prop([fc.array(fc.tuple(fc.integer({ min: 0, max: 100 }), fc.boolean()), { maxLength: 100 })])(
    'pops live timers in (deadline, insertion) order and skips cancelled ones',
    (specs) => {
      const heap = new TimerHeap<number>();
      const timers = specs.map(([deadline, cancel], i) => ({ t: heap.schedule(deadline, i), cancel }));
      for (const { t, cancel } of timers) if (cancel) t.cancelled = true;
      const expected = specs.map(([d, c], i) => ({ d, c, i })).filter((x) => !x.c)
        .sort((a, b) => a.d - b.d || a.i - b.i).map((x) => x.i);
      expect(heap.peekDeadlineMs()).toBe(expected.length > 0 ? specs[expected[0] as number]?.[0] : undefined);
      const got: number[] = [];
      for (let t = heap.popDue(100); t !== undefined; t = heap.popDue(100)) got.push(t.kind);
      expect(got).toEqual(expected);
    },
  );

  test('nothing is due before its deadline', () => {
    const heap = new TimerHeap<string>();
    heap.schedule(50, 'x');
    expect(heap.popDue(49)).toBeUndefined();
    expect(heap.popDue(50)?.kind).toBe('x');
  });
});

describe('rng', () => {
  test('the same seed gives the same stream; different seeds differ', () => {
    const a = seededRng(42);
    const b = seededRng(42);
    const c = seededRng(43);
    const sa = Array.from({ length: 8 }, () => a.nextUint32());
    expect(Array.from({ length: 8 }, () => b.nextUint32())).toEqual(sa);
    expect(Array.from({ length: 8 }, () => c.nextUint32())).not.toEqual(sa);
  });

  test('randomInt is in range and roughly uniform', () => {
    const rng = seededRng(7);
    const counts = [0, 0, 0, 0, 0, 0];
    for (let i = 0; i < 60_000; i++) counts[randomInt(rng, 6)]!++;
    for (const n of counts) expect(Math.abs(n - 10_000)).toBeLessThan(500);
  });

  propTest.prop([fc.array(fc.integer(), { maxLength: 50 }), fc.nat()])('shuffle is a permutation', (items, seed) => {
    const shuffled = shuffle(seededRng(seed), items.slice());
    expect(shuffled.slice().sort()).toEqual(items.slice().sort());
  });
});

describe('Lifeguard suspicion and awareness', () => {
  test('the timeout falls from max to min as confirmations arrive (memberlist formula)', () => {
    expect(suspicionTimeoutMs(0, 2, 4_000, 24_000)).toBe(24_000);
    expect(suspicionTimeoutMs(1, 2, 4_000, 24_000)).toBe(Math.floor(24_000 - (20_000 * Math.log(2)) / Math.log(3)));
    expect(suspicionTimeoutMs(2, 2, 4_000, 24_000)).toBe(4_000);
    expect(suspicionTimeoutMs(0, 0, 4_000, 24_000)).toBe(4_000);
  });

  test('only new, independent confirmers count, up to k', () => {
    const s = new Suspicion(1_000, 'first', 2, 4_000, 24_000);
    expect(s.deadlineMs()).toBe(25_000);
    expect(s.confirm('first')).toBe(false);
    expect(s.confirm('x')).toBe(true);
    expect(s.confirm('x')).toBe(false);
    expect(s.confirm('y')).toBe(true);
    expect(s.confirm('z')).toBe(false);
    expect(s.deadlineMs()).toBe(5_000);
  });

  test('awareness is clamped to [0, max-1] and scales timeouts by score + 1', () => {
    const a = new Awareness(8);
    expect(a.apply(-1)).toBe(false);
    expect(a.apply(20)).toBe(true);
    expect(a.score).toBe(7);
    expect(a.scale(500)).toBe(4_000);
  });
});

describe('probe round', () => {
  test('prefer(s) makes s the next probe, and every slot is still probed in each round', () => {
    for (let seed = 1; seed <= 50; seed++) {
      const round = new ProbeRound(seededRng(seed));
      const taken = [round.next(9, () => true), round.next(9, () => true), round.next(9, () => true)];
      const early = taken[1] as number; // already probed in this round
      const late = [1, 2, 3, 4, 5, 6, 7, 8].find((x) => !taken.includes(x)) as number;
      round.prefer(late);
      taken.push(round.next(9, () => true));
      expect(taken.at(-1), `seed ${seed}`).toBe(late);
      round.prefer(early);
      taken.push(round.next(9, () => true));
      expect(taken.at(-1), `seed ${seed}`).toBe(early);
      for (let i = 0; i < 4; i++) taken.push(round.next(9, () => true));
      // This round: the 8 slots, with `early` twice; nothing lost by the swaps.
      expect([...new Set(taken)].sort(), `seed ${seed}: ${taken.join(',')}`).toEqual([1, 2, 3, 4, 5, 6, 7, 8]);
      expect(taken.filter((x) => x === early).length, `seed ${seed}`).toBe(2);
    }
  });

  test('a flood of prefer() for already probed slots adds at most 64 probes to a round (hostile suspicions cannot grow it)', () => {
    const round = new ProbeRound(seededRng(7));
    const first = round.next(9, () => true);
    const taken: number[] = [];
    // A suspicion of `first` before every probe: 64 extra probes of it, then the 7 slots not yet probed.
    for (let i = 0; i < 64 + 7; i++) {
      round.prefer(first);
      taken.push(round.next(9, () => true));
    }
    expect(taken.filter((x) => x === first).length).toBe(64);
    expect([...new Set(taken)].length).toBe(8);
  });

  test('removing the last slot leaves earlier removal marks alone: nothing hands out a slot past the table', () => {
    for (let seed = 1; seed <= 20; seed++) {
      const round = new ProbeRound(seededRng(seed));
      const first = round.next(5, () => true); // table of 5: slots 1..4, shuffled
      round.removed(1, 4); // slot 4 moved into 1
      round.removed(4, -1); // then the last slot, 4, went: the table has slots 1..3
      const rest: number[] = [];
      for (let i = 0; i < 3; i++) rest.push(round.next(4, () => true));
      expect(rest.every((s) => s < 4), `seed ${seed}: first ${first}, then ${rest.join(',')}`).toBe(true);
    }
  });
});
