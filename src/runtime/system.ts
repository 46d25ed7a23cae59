/** The real clock and randomness the runtime injects into the pure core. */
import { getRandomValues } from 'node:crypto';
import { readFileSync } from 'node:fs';
import type { Rng } from '../core/rng.js';

/** Monotonic milliseconds (never jumps with wall-clock changes). */
export function monotonicMs(): number {
  return performance.now();
}

/** An Rng backed by the OS CSPRNG, drawn 1 KiB at a time. */
export function cryptoRng(): Rng {
  const pool = new Uint32Array(256);
  let next = pool.length;
  return {
    nextUint32(): number {
      if (next >= pool.length) {
        getRandomValues(pool);
        next = 0;
      }
      return pool[next++] as number;
    },
  };
}

/** This package's version, from its package.json (two levels above src/runtime, three above dist/src/runtime). */
export function packageVersion(): string {
  for (const up of ['../../package.json', '../../../package.json']) {
    try {
      const pkg = JSON.parse(readFileSync(new URL(up, import.meta.url), 'utf8')) as { name?: string; version?: string };
      if (pkg.name === 'grapevine-registry' && pkg.version !== undefined) return pkg.version;
    } catch {
      // not at this level: try the next
    }
  }
  return 'unknown';
}
