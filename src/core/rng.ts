/**
 * Randomness enters the core only through `Rng`. The simulator and tests inject a seeded
 * generator so a run replays from its seed; the runtime injects one backed by node:crypto.
 */
export interface Rng {
  /** A uniformly distributed unsigned 32-bit integer. */
  nextUint32(): number;
}

/** A uniform integer in [0, bound), without modulo bias. `bound` must be in 1..2^32. */
export function randomInt(rng: Rng, bound: number): number {
  if (bound <= 1) return 0;
  // Rejection sampling: discard the top partial range so every residue is equally likely.
  const limit = 0x1_0000_0000 - (0x1_0000_0000 % bound);
  for (;;) {
    const x = rng.nextUint32();
    if (x < limit) return x % bound;
  }
}

/** A uniform float in [0, 1). */
export function randomFloat(rng: Rng): number {
  return rng.nextUint32() / 0x1_0000_0000;
}

/** Fisher-Yates shuffle in place. */
export function shuffle<T>(rng: Rng, items: T[]): T[] {
  for (let i = items.length - 1; i > 0; i--) {
    const j = randomInt(rng, i + 1);
    const t = items[i] as T;
    items[i] = items[j] as T;
    items[j] = t;
  }
  return items;
}

/**
 * sfc32 (Chris Doty-Humphrey's Small Fast Counter): 128-bit state, passes PractRand, and is
 * cheap in JavaScript's 32-bit integer arithmetic. Seeded through splitmix32 so nearby seeds
 * give unrelated streams.
 */
export function seededRng(seed: number): Rng {
  let s = seed >>> 0;
  const split = (): number => {
    s = (s + 0x9e3779b9) >>> 0;
    let z = s;
    z = Math.imul(z ^ (z >>> 16), 0x85ebca6b) >>> 0;
    z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35) >>> 0;
    return (z ^ (z >>> 16)) >>> 0;
  };
  let a = split();
  let b = split();
  let c = split();
  let d = split();
  const rng: Rng = {
    nextUint32(): number {
      const t = (((a + b) >>> 0) + d) >>> 0;
      d = (d + 1) >>> 0;
      a = b ^ (b >>> 9);
      b = (c + (c << 3)) >>> 0;
      c = ((c << 21) | (c >>> 11)) >>> 0;
      c = (c + t) >>> 0;
      return t;
    },
  };
  for (let i = 0; i < 12; i++) rng.nextUint32();
  return rng;
}
