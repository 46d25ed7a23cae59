/** The key-value store as users see it (`gv.kv`). */
import type { KvChange, KvEntry } from '../registry/kv.js';

export type { KvChange, KvEntry } from '../registry/kv.js';

export interface KvOptions {
  /** How often a member compares its store with one other member's (anti-entropy). Default 1 s. */
  syncIntervalMs?: number;
  /** How long a deleted key's tombstone is kept before it is collected. Default 72 h. */
  tombstoneTtlMs?: number;
  /** Where the store keeps its snapshot (kv.json), so a cluster restarted whole keeps its data: default the member's `dataDir`; false: nowhere. */
  dataDir?: string | false;
}

export interface Kv {
  /** The entry at `key` on this member, from memory. */
  get(key: string): KvEntry | undefined;
  /** Entries whose keys start with `prefix`, sorted. */
  list(prefix?: string): KvEntry[];
  /** Keys under `prefix`; with `separator`, cut after its first occurrence past the prefix (Consul's ?keys&separator). */
  keys(prefix?: string, separator?: string): string[];
  /** Writes `key` here and spreads it; readers elsewhere see it within about a second. */
  put(key: string, value: Uint8Array | string, options?: { flags?: bigint | number }): KvEntry;
  /** Deletes `key` (with `recurse`, every key it prefixes). Returns how many were deleted. */
  delete(key: string, options?: { recurse?: boolean }): number;
  /** Calls `listener` with every change, at once. Returns the unsubscribe function. */
  onChange(listener: (change: KvChange) => void): () => void;
  /** Changes under `prefix` as they happen, until `signal` aborts or the member closes. */
  watch(prefix?: string, options?: { signal?: AbortSignal }): AsyncIterableIterator<KvChange>;
  /** One more with every change this member makes or hears. */
  readonly index: number;
  /** The largest modify index under `prefix` (`exact`: of that key), tombstones included; `index` if none. */
  indexOf(prefix: string, exact?: boolean): number;
  /** Live keys held. */
  readonly size: number;
}
