/**
 * Wires start() option `kv` to this folder (every member runs the store unless `kv: false`), and
 * gives Grapevine its `kv` property by declaration merging: the runtime imports no room.
 */
import { Grapevine, InvalidStateError, provideExtension } from '../runtime/index.js';
import type { Kv, KvOptions } from './api.js';
import { rooms } from './rooms.js';

declare module '../runtime/index.js' {
  interface Grapevine {
    /** The cluster's key-value store, as this member holds it (eventually consistent: see docs/library.md). */
    readonly kv: Kv;
  }
  interface GrapevineOptions {
    /** The key-value store: on unless `false`; options tune its sync. */
    kv?: boolean | KvOptions;
  }
}

export function provideKv(): void {
  provideExtension('kv', async () => (await import('./room.js')).serveKv, true);
  if (Object.getOwnPropertyDescriptor(Grapevine.prototype, 'kv') !== undefined) return;
  Object.defineProperty(Grapevine.prototype, 'kv', {
    configurable: true,
    get(this: Grapevine): Kv {
      const room = rooms.of(this);
      if (room === undefined) throw new InvalidStateError('this member runs no key-value store (started with kv: false, or closed)');
      return room;
    },
  });
}
