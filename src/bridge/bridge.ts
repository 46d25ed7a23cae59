/**
 * One bridge between a member and a store (etcd or ZooKeeper), the same for both:
 * - export: this member's own instances, and its gossip address as a seed for its pool, kept in
 *   the store under a session (etcd lease, ZooKeeper session) so they vanish if it crashes.
 *   Writes are coalesced and rate-limited: a few rounds at once, then one per `writeIntervalMs`
 *   on average, whatever a check does.
 * - import: everything else under the prefix or root, listed and then followed by watches,
 *   listed afresh after every break (reconnect, compaction, session expiry).
 * - the store down or unreachable never touches gossip instances: imports stay as last seen,
 *   exports are written again once a session is back, with backoff between attempts.
 */
import type { Grapevine, Logger } from '../runtime/index.js';
import { parseAddress } from '../runtime/index.js';
import type { ImportSink } from '../registry/index.js';
import { type ExportedEntry, exportedEntry, instancePath, MEMBERS_DIR, memberPath, parseEntry, segment } from './entries.js';

/** A store as the bridge uses it; paths are relative to the prefix or root. */
export interface Store {
  readonly source: 'etcd' | 'zookeeper';
  /** "etcd http://127.0.0.1:2379 services/": for logs, and to key imported instances. */
  readonly label: string;
  /** The store's own key for a relative path (the `node` of entries that name none). */
  fullKey(path: string): string;
  /** The value written for an exported instance. */
  encode(entry: ExportedEntry, registeredMs: number): string;
  /** Opens a write session; rejects if the store is unreachable. `lost` is called if the session ends later. */
  openSession(lost: (why: string) => void): Promise<void>;
  put(path: string, value: string): Promise<void>;
  remove(path: string): Promise<void>;
  /**
   * Lists everything under the root (`reset`), then reports each change until the watch breaks
   * (`broken`, once) or the returned function stops it.
   */
  follow(reset: (all: Map<string, Uint8Array>) => void, change: (path: string, value: Uint8Array | undefined) => void, broken: (why: string) => void): Promise<() => void>;
  /** The entries directly under a relative directory. */
  list(dir: string): Promise<Map<string, Uint8Array>>;
  /** Ends the session (this member's entries go with it; `written` are removed first where the store needs that) and the client. */
  close(written: readonly string[]): Promise<void>;
}

export interface BridgeSettings {
  export: boolean;
  import: boolean;
  seeds: boolean;
  writeIntervalMs: number;
}

const BACKOFF_MIN_MS = 250;
/** Instances one bridge imports at most: a store holding more cannot grow a member's memory without bound. */
const IMPORTS_MAX = 100_000;
/** Write rounds allowed back to back before the interval applies. */
const WRITE_BURST = 3;
const BACKOFF_MAX_MS = 5_000;
/** How long seeds() waits for the store at start before answering with nothing. */
const FIRST_CONTACT_MS = 3_000;
/** How long start() waits for this member's first writes. */
export const FIRST_ROUND_MS = 3_000;
const CLOSE_TIMEOUT_MS = 3_000;

export class Bridge {
  private readonly counters = { connected: 0, writes: 0, writeErrors: 0, sessions: 0, sessionsLost: 0, lists: 0, badEntries: 0, overLimit: 0 };
  /** Keys of the instances this bridge imported and holds in the catalog. */
  private readonly held = new Set<string>();
  private session = false;
  private syncing = false;
  /** A change came in while a round was running: run another after it. */
  private dirty = false;
  private closed = false;
  private readonly written = new Map<string, string>();
  /** When each exported instance was first written (Curator's registrationTimeUTC stays put). */
  private readonly since = new Map<string, number>();
  /** Start times of the last WRITE_BURST rounds. */
  private readonly rounds: number[] = [];
  private syncTimer: NodeJS.Timeout | undefined;
  private readonly timers = new Set<NodeJS.Timeout>();
  private sessionBackoff = BACKOFF_MIN_MS;
  private followBackoff = BACKOFF_MIN_MS;
  private stopFollowing: (() => void) | undefined;
  private readonly unsubscribe: () => void;
  private readonly contact: Promise<void>;
  private contacted!: () => void;
  /** Settles once the first round of writes is done, or the store was found unreachable. */
  private readonly firstRound: Promise<void>;
  private firstRoundDone!: () => void;
  /** Whether the store was reported unreachable (so its return is logged once). */
  private down = false;
  private readonly importPrefix: string;

  constructor(
    private readonly gv: Grapevine,
    private readonly store: Store,
    private readonly settings: BridgeSettings,
    private readonly imports: ImportSink,
    private readonly log: Logger,
  ) {
    this.importPrefix = `${store.label}\u0000`;
    this.contact = new Promise((resolve) => (this.contacted = resolve));
    this.firstRound = new Promise((resolve) => (this.firstRoundDone = resolve));
    this.unsubscribe = gv.catalog.onChange((c) => {
      if (c.instance.source === 'gossip' && c.instance.node === gv.name) this.schedule();
    });
  }

  /** Counters, and the instances imported now. */
  get stats(): Readonly<Record<string, number>> {
    return { ...this.counters, imported: this.held.size };
  }

  /**
   * Connects, and resolves once this member's entries are written (so a member started next
   * finds it), or the store is found unreachable, or `waitMs` passed: start() never hangs on a store.
   */
  async start(waitMs: number): Promise<void> {
    const writes = this.settings.export || this.settings.seeds;
    if (writes) void this.openSession();
    else this.firstRoundDone();
    if (this.settings.import) void this.follow();
    if (!writes && !this.settings.import) this.contacted();
    await Promise.race([this.firstRound, this.delay(waitMs)]);
  }

  /** Gossip addresses of this pool's other members, as the store lists them. */
  async seeds(): Promise<string[]> {
    if (!this.settings.seeds) return [];
    await Promise.race([this.contact, this.delay(FIRST_CONTACT_MS)]);
    if (this.closed) return [];
    const found = await this.store.list(`${MEMBERS_DIR}/${segment(this.gv.pool)}`);
    const out: string[] = [];
    for (const value of found.values()) {
      const text = Buffer.from(value).toString('utf8');
      try {
        const a = parseAddress(text, 'seed');
        if (a.port !== 0 && text !== this.gv.address) out.push(text);
      } catch {
        this.counters.badEntries++;
      }
    }
    return out;
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.unsubscribe();
    clearTimeout(this.syncTimer);
    for (const t of this.timers) clearTimeout(t);
    this.stopFollowing?.();
    const written = [...this.written.keys()];
    await Promise.race([this.store.close(this.session ? written : []).catch(() => undefined), this.delay(CLOSE_TIMEOUT_MS)]);
  }

  // ---------------------------------------------------------------- export

  private async openSession(): Promise<void> {
    if (this.closed) return;
    try {
      await this.store.openSession((why) => this.sessionLost(why));
    } catch (e) {
      this.unreachable(e);
      this.after(this.sessionBackoff, () => void this.openSession());
      this.sessionBackoff = Math.min(BACKOFF_MAX_MS, this.sessionBackoff * 2);
      return;
    }
    if (this.closed) return;
    this.reachable();
    this.session = true;
    this.counters.sessions++;
    this.sessionBackoff = BACKOFF_MIN_MS;
    this.schedule(true);
  }

  private sessionLost(why: string): void {
    if (this.closed || !this.session) return;
    this.session = false;
    this.counters.sessionsLost++;
    this.written.clear();
    this.log.warn(`${this.store.label}: session lost (${why}); writing this member's entries again once it is back`, { store: this.store.label, why });
    this.after(BACKOFF_MIN_MS, () => void this.openSession());
  }

  /**
   * Runs a write round as soon as the budget allows: up to WRITE_BURST rounds at once, at most
   * WRITE_BURST per WRITE_BURST intervals; changes meanwhile are coalesced into the next round.
   */
  private schedule(now = false): void {
    this.dirty = true;
    if (this.closed || this.syncTimer !== undefined) return;
    const oldest = this.rounds.length < WRITE_BURST ? 0 : this.rounds[0] as number;
    const wait = now ? 0 : Math.max(0, oldest + WRITE_BURST * this.settings.writeIntervalMs - Date.now());
    this.syncTimer = setTimeout(() => {
      this.syncTimer = undefined;
      void this.sync();
    }, wait);
    this.syncTimer.unref();
  }

  private desired(): Map<string, string> {
    const out = new Map<string, string>();
    const pool = this.gv.pool;
    if (this.settings.seeds) out.set(memberPath(pool, this.gv.name), this.gv.address);
    if (!this.settings.export) return out;
    const now = Date.now();
    for (const i of this.gv.catalog.nodeInstances(this.gv.name)) {
      const path = instancePath(i, pool);
      let since = this.since.get(path);
      if (since === undefined) this.since.set(path, since = now);
      out.set(path, this.store.encode(exportedEntry(i, pool), since));
    }
    return out;
  }

  private async sync(): Promise<void> {
    if (this.closed || !this.session || this.syncing) return;
    this.syncing = true;
    this.dirty = false;
    this.rounds.push(Date.now());
    if (this.rounds.length > WRITE_BURST) this.rounds.shift();
    const want = this.desired();
    for (const path of this.since.keys()) if (!want.has(path)) this.since.delete(path);
    try {
      for (const [path, value] of want) {
        if (this.written.get(path) === value) continue;
        await this.store.put(path, value);
        this.written.set(path, value);
        this.counters.writes++;
      }
      for (const path of [...this.written.keys()]) {
        if (want.has(path)) continue;
        await this.store.remove(path);
        this.written.delete(path);
        this.counters.writes++;
      }
    } catch (e) {
      this.counters.writeErrors++;
      this.log.warn(`${this.store.label}: write failed (${(e as Error).message}); trying again`, { store: this.store.label });
      this.after(this.sessionBackoff, () => this.schedule(true));
      this.sessionBackoff = Math.min(BACKOFF_MAX_MS, this.sessionBackoff * 2);
    } finally {
      this.syncing = false;
      this.firstRoundDone();
    }
    if (this.dirty) this.schedule();
  }

  // ---------------------------------------------------------------- import

  private async follow(): Promise<void> {
    if (this.closed) return;
    let broke = false;
    const broken = (why: string): void => {
      if (broke || this.closed) return;
      broke = true;
      this.stopFollowing?.();
      this.stopFollowing = undefined;
      this.log.info(`${this.store.label}: watch ended (${why}); listing again`, { store: this.store.label, why });
      this.after(this.followBackoff, () => void this.follow());
      this.followBackoff = Math.min(BACKOFF_MAX_MS, this.followBackoff * 2);
    };
    try {
      const stop = await this.store.follow((all) => this.reset(all), (path, value) => this.apply(path, value), broken);
      if (this.closed || broke) {
        stop();
        return;
      }
      this.stopFollowing = stop;
    } catch (e) {
      this.unreachable(e);
      broke = true;
      this.after(this.followBackoff, () => void this.follow());
      this.followBackoff = Math.min(BACKOFF_MAX_MS, this.followBackoff * 2);
      return;
    }
    this.reachable();
    this.followBackoff = BACKOFF_MIN_MS;
  }

  /** A full listing: every entry applied, imports no longer listed removed. */
  private reset(all: Map<string, Uint8Array>): void {
    this.counters.lists++;
    for (const key of [...this.held]) {
      if (!all.has(key.slice(this.importPrefix.length))) this.apply(key.slice(this.importPrefix.length), undefined);
    }
    for (const [path, value] of all) this.apply(path, value);
  }

  private apply(path: string, value: Uint8Array | undefined): void {
    const key = this.importPrefix + path;
    if (value === undefined) {
      this.held.delete(key);
      this.imports.setImported(key, undefined, this.store.source);
      return;
    }
    if (!this.held.has(key) && this.held.size >= IMPORTS_MAX) {
      this.counters.overLimit++;
      if (this.counters.overLimit === 1) this.log.warn(`${this.store.label}: more than ${IMPORTS_MAX} entries; the rest are not imported`, { store: this.store.label });
      return;
    }
    const parsed = parseEntry(path, value, { store: this.store.source, key: this.store.fullKey(path) }, this.gv.pool);
    if (parsed.kind === 'bad') {
      this.counters.badEntries++;
      this.log.debug(`${this.store.label}: skipped ${this.store.fullKey(path)}: ${parsed.why}`, { store: this.store.label, key: path });
    }
    if (parsed.kind === 'instance') this.held.add(key);
    else this.held.delete(key);
    this.imports.setImported(key, parsed.kind === 'instance' ? parsed.instance : undefined, this.store.source);
  }

  // ---------------------------------------------------------------- shared

  private unreachable(e: unknown): void {
    this.counters.connected = 0;
    this.contacted(); // seeds() stops waiting: there is nothing to read
    this.firstRoundDone();
    if (this.down) return;
    this.down = true;
    this.log.warn(`${this.store.label} unreachable (${(e as Error).message}); gossip goes on, retrying with backoff`, { store: this.store.label });
  }

  private reachable(): void {
    this.counters.connected = 1;
    this.contacted();
    if (!this.down) return;
    this.down = false;
    this.log.info(`${this.store.label} reachable again`, { store: this.store.label });
  }

  private after(ms: number, fn: () => void): void {
    if (this.closed) return;
    const t = setTimeout(() => {
      this.timers.delete(t);
      fn();
    }, ms * (0.75 + Math.random() / 2));
    t.unref();
    this.timers.add(t);
  }

  private delay(ms: number): Promise<void> {
    return new Promise((resolve) => setTimeout(resolve, ms).unref());
  }
}
