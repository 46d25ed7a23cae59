/**
 * The key-value store's room on a running member: a replica (src/registry/kv.ts) on the member's
 * kv channel, synced by kv-sync.ts, with anti-entropy against one random live member every
 * `syncIntervalMs` and tombstones collected after their TTL.
 */
import { join } from 'node:path';
import { KvStore, type KvChange, type KvEntry, type KvRecord } from '../registry/kv.js';
import { KvSync, recordsFromTuples, recordToTuple } from '../registry/kv-sync.js';
import {
  APP_CHANNELS, DataDirError, type Extension, type ExtensionContext, type ExtensionStarter, type Grapevine, type GrapevineOptions, InvalidOptionError, StateFile,
} from '../runtime/index.js';
import type { Kv, KvOptions } from './api.js';
import { rooms } from './rooms.js';

const SYNC_INTERVAL_MS = 1_000;
const TOMBSTONE_TTL_MS = 72 * 3_600_000;
const COLLECT_EVERY_MS = 60_000;
/** Changes are written to the snapshot at most this often (and at close). */
const SAVE_EVERY_MS = 1_000;
/** Changes a watcher may fall behind by before its watch ends with an error. */
const WATCH_BACKLOG_MAX = 10_000;

function options(value: unknown): Required<KvOptions> {
  if (value === true) return { syncIntervalMs: SYNC_INTERVAL_MS, tombstoneTtlMs: TOMBSTONE_TTL_MS, dataDir: false };
  if (value === null || typeof value !== 'object') throw new InvalidOptionError('kv', 'must be true, false or { syncIntervalMs, tombstoneTtlMs, dataDir }');
  const o = value as KvOptions;
  for (const k of Object.keys(o)) if (k !== 'syncIntervalMs' && k !== 'tombstoneTtlMs' && k !== 'dataDir') throw new InvalidOptionError(`kv.${k}`, 'unknown option');
  if (o.dataDir !== undefined && o.dataDir !== false && (typeof o.dataDir !== 'string' || o.dataDir === '')) throw new InvalidOptionError('kv.dataDir', 'must be a directory path or false');
  const ms = (v: unknown, name: string, fallback: number): number => {
    if (v === undefined) return fallback;
    if (typeof v !== 'number' || !Number.isFinite(v) || v < 10) throw new InvalidOptionError(`kv.${name}`, 'must be a number of ms, at least 10');
    return v;
  };
  return { syncIntervalMs: ms(o.syncIntervalMs, 'syncIntervalMs', SYNC_INTERVAL_MS), tombstoneTtlMs: ms(o.tombstoneTtlMs, 'tombstoneTtlMs', TOMBSTONE_TTL_MS), dataDir: o.dataDir ?? false };
}

/** Before the member is made: the store keeps its snapshot in the member's data directory unless told otherwise. */
async function prepare(value: unknown, opts: GrapevineOptions): Promise<GrapevineOptions> {
  options(value);
  const own = value === true ? {} : (value as KvOptions);
  if (own.dataDir !== undefined || opts.dataDir === undefined) return opts;
  return { ...opts, kv: { ...own, dataDir: opts.dataDir } };
}

export const serveKv: ExtensionStarter = Object.assign(async (member: Grapevine, value: unknown, { logger }: ExtensionContext): Promise<Extension> => {
  const o = options(value);
  const store = new KvStore(member.name, o.tombstoneTtlMs);
  const snapshot = o.dataDir === false ? undefined : new StateFile<{ records: unknown[] }>(join(o.dataDir, 'kv.json'), 'kv', (e) => logger.error(`key-value store: ${e.message}`, {}));
  if (snapshot !== undefined) await restore(store, snapshot);
  const channel = member.channel(APP_CHANNELS.kv);
  const port = { ...channel, isMember: (addr: string) => member.members().some((m) => m.addr === addr && m.state === 'alive') };
  const sync = new KvSync(store, port, (from, reason) => logger.debug(`key-value input from ${from} dropped: ${reason}`, { from, reason }));
  channel.onMessage((_now, from, payload, kind) => sync.onMessage(Date.now(), from, payload, kind));
  const closing = new AbortController();
  const syncTimer = setInterval(() => {
    const peers = member.members().filter((m) => m.name !== member.name && m.state === 'alive');
    const peer = peers[Math.floor(Math.random() * peers.length)];
    if (peer !== undefined) sync.probe(peer.addr);
  }, o.syncIntervalMs);
  const collectTimer = setInterval(() => store.collect(Date.now()), COLLECT_EVERY_MS);
  syncTimer.unref();
  collectTimer.unref();
  let saveTimer: NodeJS.Timeout | undefined;
  const save = (): void => {
    saveTimer = undefined;
    // Values in base64: the snapshot is JSON.
    snapshot?.save({ records: store.records().map((r) => withValue(recordToTuple(r), Buffer.from(r.value).toString('base64'))) });
  };
  const unsubscribeSave = snapshot === undefined ? () => undefined : store.onChange(() => {
    saveTimer ??= setTimeout(save, SAVE_EVERY_MS);
  });
  const encoder = new TextEncoder();
  const kv: Kv = {
    get: (key) => store.get(key),
    list: (prefix = '') => store.list(prefix),
    keys: (prefix = '', separator) => keysOf(store.list(prefix), prefix, separator),
    put: (key, v, opts = {}) => {
      const record = store.put(Date.now(), key, typeof v === 'string' ? encoder.encode(v) : v, opts.flags);
      sync.spread([record]);
      return store.get(key) as KvEntry;
    },
    delete: (key, opts = {}) => {
      const records = store.delete(Date.now(), key, opts.recurse === true);
      sync.spread(records);
      return records.length;
    },
    onChange: (listener) => store.onChange(listener),
    watch: (prefix = '', opts = {}) => watch(store, prefix, opts.signal === undefined ? closing.signal : AbortSignal.any([opts.signal, closing.signal])),
    get index() {
      return store.index;
    },
    indexOf: (prefix, exact = false) => store.indexOf(prefix, exact),
    get size() {
      return store.size;
    },
  };
  rooms.set(member, kv);
  const stats = sync.stats;
  return {
    get stats() {
      return { keys: store.size, ...stats };
    },
    close: async () => {
      clearInterval(syncTimer);
      clearInterval(collectTimer);
      unsubscribeSave();
      if (saveTimer !== undefined) {
        clearTimeout(saveTimer);
        save();
      }
      await snapshot?.flush();
      closing.abort();
      channel.onMessage(undefined);
      rooms.set(member, undefined);
    },
  };
}, { check: (value: unknown) => void options(value), prepare });

/** A register tuple with its value (the second field) replaced. */
function withValue(tuple: unknown[], value: unknown): unknown[] {
  const out = [...tuple];
  out[1] = value;
  return out;
}

/** The snapshot's registers, merged as if a peer had sent them; one that does not pass is the file's error. */
async function restore(store: KvStore, file: StateFile<object>): Promise<void> {
  const doc = await file.read();
  if (doc === undefined) return;
  let records: KvRecord[];
  try {
    if (!Array.isArray(doc.records)) throw new Error('no "records" list');
    records = recordsFromTuples(doc.records.map((t: unknown) => (Array.isArray(t) && typeof t[1] === 'string' ? withValue(t, new Uint8Array(Buffer.from(t[1], 'base64'))) : t)));
  } catch (e) {
    throw new DataDirError(file.path, `has a bad record (${(e as Error).message})`);
  }
  for (const r of records) store.merge(Date.now(), r);
}

/** Consul's ?keys: every key under `prefix`, or with `separator` each cut after its first separator past the prefix, once. */
function keysOf(entries: readonly KvEntry[], prefix: string, separator: string | undefined): string[] {
  if (separator === undefined || separator === '') return entries.map((e) => e.key);
  const out = new Set<string>();
  for (const e of entries) {
    const at = e.key.indexOf(separator, prefix.length);
    out.add(at < 0 ? e.key : e.key.slice(0, at + separator.length));
  }
  return [...out];
}

async function* watch(store: KvStore, prefix: string, signal: AbortSignal): AsyncIterableIterator<KvChange> {
  const queue: KvChange[] = [];
  let wake: (() => void) | undefined;
  const unsubscribe = store.onChange((c) => {
    if (!c.key.startsWith(prefix)) return;
    queue.push(c);
    wake?.();
  });
  const onAbort = (): void => wake?.();
  signal.addEventListener('abort', onAbort, { once: true });
  try {
    while (!signal.aborted) {
      if (queue.length > WATCH_BACKLOG_MAX) throw new InvalidOptionError('watch', `fell ${queue.length} changes behind; read faster or watch a narrower prefix`);
      const next = queue.shift();
      if (next !== undefined) {
        yield next;
        continue;
      }
      await new Promise<void>((r) => {
        wake = r;
      });
      wake = undefined;
    }
  } finally {
    unsubscribe();
    signal.removeEventListener('abort', onAbort);
  }
}
