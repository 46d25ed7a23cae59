/**
 * Blocking queries, as Consul's: a read with `?index=N` waits until the endpoint's index moves
 * past N, or until `wait` (default 5 min, at most 10 min, plus up to 1/16 of it as jitter so
 * clients that started together do not all come back at once). Each waiter is woken on the
 * change that moves its own index: a change to one service does not wake readers of another.
 */
import { InvalidOptionError } from '../runtime/index.js';
import { parseDuration } from './decode.js';

export const WAIT_DEFAULT_MS = 5 * 60_000;
export const WAIT_MAX_MS = 10 * 60_000;

interface Waiter {
  since: number;
  index: () => number;
  wake: () => void;
}

export class Blocking {
  private readonly waiters = new Set<Waiter>();

  constructor(private readonly max: number) {}

  get size(): number {
    return this.waiters.size;
  }

  /**
   * Resolves when `index()` passes `since` (true) or the wait ends (false), or at once if it
   * already has or went backwards (this member restarted: the client must start over).
   * Throws 'full' when `max` queries are already waiting.
   */
  wait(since: number, index: () => number, waitMs: number, signal: AbortSignal): Promise<boolean> {
    const now = index();
    if (now !== since) return Promise.resolve(true);
    if (this.waiters.size >= this.max) throw new BlockingFull();
    return new Promise((resolve) => {
      const done = (changed: boolean): void => {
        clearTimeout(timer);
        this.waiters.delete(waiter);
        signal.removeEventListener('abort', onAbort);
        resolve(changed);
      };
      const waiter: Waiter = { since, index, wake: () => done(true) };
      const onAbort = (): void => done(false);
      const timer = setTimeout(() => done(false), waitMs + Math.random() * (waitMs / 16));
      this.waiters.add(waiter);
      signal.addEventListener('abort', onAbort, { once: true });
    });
  }

  /** Something changed: wake every waiter whose index moved. */
  changed(): void {
    for (const w of [...this.waiters]) if (w.index() !== w.since) w.wake();
  }

  /** Ends every wait (the server is closing). */
  close(): void {
    for (const w of [...this.waiters]) w.wake();
  }
}

export class BlockingFull extends Error {}

/** `?index=` and `?wait=` from a query string: undefined index means "answer now". */
export function blockingParams(query: URLSearchParams): { index: number | undefined; waitMs: number } {
  const raw = query.get('index');
  let index: number | undefined;
  if (raw !== null && raw !== '') {
    index = Number(raw);
    if (!Number.isInteger(index) || index < 0) throw new InvalidOptionError('index', `must be a non-negative integer, got ${JSON.stringify(raw)}`);
  }
  const wait = query.get('wait');
  const waitMs = wait === null || wait === '' ? WAIT_DEFAULT_MS : Math.min(WAIT_MAX_MS, parseDuration(wait, 'wait'));
  return { index, waitMs };
}
