/**
 * `watch(name)`: a service's changes as an async iterator. Changes are buffered per watcher up
 * to a bound; a watcher that falls that far behind gets a WatchOverflowError instead of a
 * silently incomplete stream, and can resynchronise with a fresh lookup and watch.
 */
import { GrapevineError } from '../core/errors.js';
import type { Registry, ServiceChange } from './registry.js';

/** What a watch reads: the catalog, or the registry under it. */
export type WatchSource = Pick<Registry, 'onChange' | 'lookup' | 'index'>;

export interface WatchOptions {
  /** Ends the iteration (without error) when aborted. */
  signal?: AbortSignal;
  /** First yield an 'added' change for every current instance. Default true. */
  initial?: boolean;
  /** Changes buffered before the watcher is failed. Default 10,000. */
  bufferMax?: number;
}

export class WatchOverflowError extends GrapevineError {
  constructor(service: string, bufferMax: number) {
    super('grapevine.watch-overflow', `watch(${JSON.stringify(service)}) fell ${bufferMax} changes behind`);
  }
}

export function watchService(source: WatchSource, name: string, options: WatchOptions = {}): AsyncIterableIterator<ServiceChange> {
  const bufferMax = options.bufferMax ?? 10_000;
  const buffer: ServiceChange[] = [];
  let head = 0;
  let done = false;
  let failure: Error | undefined;
  let wake: (() => void) | undefined;
  const finish = (): void => {
    done = true;
    unsubscribe();
    options.signal?.removeEventListener('abort', finish);
    wake?.();
  };
  const unsubscribe = source.onChange((change) => {
    if (done || change.instance.service !== name) return;
    if (buffer.length - head >= bufferMax) {
      failure = new WatchOverflowError(name, bufferMax);
      finish();
      return;
    }
    buffer.push(change);
    wake?.();
  });
  if (options.initial ?? true) {
    const index = source.index;
    for (const instance of source.lookup(name)) buffer.push({ type: 'added', instance, index });
  }
  if (options.signal?.aborted === true) finish();
  else options.signal?.addEventListener('abort', finish, { once: true });

  const iterator: AsyncIterableIterator<ServiceChange> = {
    async next(): Promise<IteratorResult<ServiceChange>> {
      for (;;) {
        if (head < buffer.length) {
          const value = buffer[head++] as ServiceChange;
          if (head > 1_024 && head * 2 > buffer.length) {
            buffer.splice(0, head);
            head = 0;
          }
          return { value, done: false };
        }
        if (failure !== undefined) {
          const f = failure;
          failure = undefined;
          throw f;
        }
        if (done) return { value: undefined, done: true };
        await new Promise<void>((resolve) => {
          wake = resolve;
        });
        wake = undefined;
      }
    },
    async return(): Promise<IteratorResult<ServiceChange>> {
      finish();
      return { value: undefined, done: true };
    },
    [Symbol.asyncIterator]() {
      return iterator;
    },
  };
  return iterator;
}
