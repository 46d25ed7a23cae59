/**
 * The ZooKeeper side of a bridge, on `node-zookeeper-client` (an optional peer dependency,
 * loaded only here): pure JavaScript, so no native addon to build (the `zookeeper` package is
 * one), with sessions, ephemeral znodes, one-shot watches re-registered on reconnect, and auth.
 *
 * Exports are ephemeral znodes of this member's session holding Curator's service-discovery
 * JSON. Imports mirror the tree two levels deep (<root>/<service>[/<id>]) with watches; each
 * path holds at most one armed watch of each kind, so re-listing never stacks watchers. A new
 * session (after expiry) or a reconnect lists everything again.
 */
import type { Client, Event, Stat } from 'node-zookeeper-client';
import { InvalidOptionError } from '../runtime/index.js';
import type { Store } from './bridge.js';
import { curatorEntry, type ExportedEntry } from './entries.js';

export interface ZookeeperStoreOptions {
  connect: string;
  root: string;
  sessionTimeoutMs: number;
  /** Digest auth, "user:password". */
  digest?: string;
}

type Zk = typeof import('node-zookeeper-client');

/** How long a session may take to establish before openSession rejects. */
const CONNECT_TIMEOUT_MS = 5_000;
/** A request not answered within this fails (and its round is retried with backoff). */
const CALL_TIMEOUT_MS = 5_000;

async function loadZk(): Promise<Zk> {
  try {
    const m = await import('node-zookeeper-client');
    return ((m as { default?: Zk }).default ?? m) as Zk;
  } catch {
    throw new InvalidOptionError('bridges', 'the ZooKeeper bridge needs the node-zookeeper-client package: npm install node-zookeeper-client');
  }
}

export async function zookeeperStore(o: ZookeeperStoreOptions): Promise<Store> {
  return new ZookeeperStore(await loadZk(), o);
}

type Handlers = {
  change: (path: string, value: Uint8Array | undefined) => void;
  broken: (why: string) => void;
};

class ZookeeperStore implements Store {
  readonly source = 'zookeeper';
  readonly label: string;
  private client: Client | undefined;
  private connecting: Promise<Client> | undefined;
  private readonly lostListeners = new Set<(why: string) => void>();
  private handlers: Handlers | undefined;
  /** The mirror of the tree under the root that the handlers were last told about. */
  private known = new Map<string, Uint8Array>();
  /** Service names under the root that the mirror holds. */
  private services = new Set<string>();
  /** Paths with an armed watch ("c" children, "d" data) on the current client. */
  private armed = new Set<string>();
  /** A watch fired while the tree was being listed: list again. */
  private missed = false;
  private closed = false;

  constructor(private readonly zk: Zk, private readonly o: ZookeeperStoreOptions) {
    this.label = `zookeeper ${o.connect} ${o.root}`;
  }

  fullKey(path: string): string {
    return `${this.o.root}/${path}`;
  }

  encode(entry: ExportedEntry, registeredMs: number): string {
    return JSON.stringify(curatorEntry(entry, registeredMs));
  }

  async openSession(lost: (why: string) => void): Promise<void> {
    await this.connected();
    this.lostListeners.add(lost);
  }

  async put(path: string, value: string): Promise<void> {
    const c = await this.connected();
    const full = this.fullKey(path);
    const data = Buffer.from(value);
    for (let attempt = 0; ; attempt++) {
      try {
        await this.call<string>((cb) => c.mkdirp(full.slice(0, full.lastIndexOf('/')), cb));
        await this.call<string>((cb) => c.create(full, data, this.zk.CreateMode.EPHEMERAL, cb));
        return;
      } catch (e) {
        const code = codeOf(e);
        if (code === this.zk.Exception.NO_NODE && attempt < 3) continue; // a parent was removed between mkdirp and create
        if (code !== this.zk.Exception.NODE_EXISTS) throw e;
      }
      const stat = await this.call<Stat>((cb) => c.exists(full, cb));
      if (stat !== null && stat !== undefined && Buffer.compare(stat.ephemeralOwner, c.getSessionId()) === 0) {
        await this.call<Stat>((cb) => c.setData(full, data, cb));
        return;
      }
      // Left by this member's previous session (a restart within the session timeout): take it over.
      await this.call<void>((cb) => c.remove(full, cb)).catch((e: unknown) => {
        if (codeOf(e) !== this.zk.Exception.NO_NODE) throw e;
      });
      if (attempt >= 3) throw new Error(`${full} keeps coming back`);
    }
  }

  async remove(path: string): Promise<void> {
    const c = await this.connected();
    const full = this.fullKey(path);
    await this.call<void>((cb) => c.remove(full, cb)).catch((e: unknown) => {
      if (codeOf(e) !== this.zk.Exception.NO_NODE) throw e;
    });
    // The service directory goes with its last instance, so a cluster that shut down leaves nothing behind.
    const parent = full.slice(0, full.lastIndexOf('/'));
    if (parent.length > this.o.root.length) await this.call<void>((cb) => c.remove(parent, cb)).catch(() => undefined);
  }

  async follow(reset: (all: Map<string, Uint8Array>) => void, change: Handlers['change'], broken: Handlers['broken']): Promise<() => void> {
    const c = await this.connected();
    const handlers: Handlers = { change, broken };
    this.handlers = undefined;
    this.missed = false;
    const all = new Map<string, Uint8Array>();
    await this.call<string>((cb) => c.mkdirp(this.o.root, cb));
    const services = (await this.children(c, this.o.root)).filter((s) => !s.startsWith('_'));
    for (const service of services) {
      for (const [path, value] of await this.scanService(c, service)) all.set(path, value);
    }
    this.known = all;
    this.services = new Set(services);
    this.handlers = handlers;
    reset(new Map(all));
    if (this.missed) queueMicrotask(() => broken('changed while listing'));
    return () => {
      if (this.handlers === handlers) this.handlers = undefined;
    };
  }

  async list(dir: string): Promise<Map<string, Uint8Array>> {
    const c = await this.connected();
    const out = new Map<string, Uint8Array>();
    const base = this.fullKey(dir);
    let names: string[];
    try {
      names = await this.call<string[]>((cb) => c.getChildren(base, cb));
    } catch (e) {
      if (codeOf(e) === this.zk.Exception.NO_NODE) return out;
      throw e;
    }
    for (const name of names) {
      const data = await this.call<Buffer>((cb) => c.getData(`${base}/${name}`, cb)).catch(() => undefined);
      if (data !== undefined && data !== null) out.set(`${dir}/${name}`, data);
    }
    return out;
  }

  async close(written: readonly string[]): Promise<void> {
    this.handlers = undefined;
    if (this.client !== undefined) for (const path of written) await this.remove(path).catch(() => undefined);
    this.closed = true;
    this.client?.close();
    this.client = undefined;
  }

  // ---------------------------------------------------------------- sessions

  /** The connected client, creating one (a new session) when there is none. */
  private connected(): Promise<Client> {
    if (this.closed) return Promise.reject(new Error('closed'));
    const c = this.client;
    if (c !== undefined && c.getState() === this.zk.State.SYNC_CONNECTED) return Promise.resolve(c);
    this.connecting ??= this.connect().finally(() => {
      this.connecting = undefined;
    });
    return this.connecting;
  }

  private async connect(): Promise<Client> {
    if (this.client !== undefined) {
      const c = this.client;
      return new Promise<Client>((resolve, reject) => {
        if (c.getState() === this.zk.State.SYNC_CONNECTED) return resolve(c);
        const onConnected = (): void => {
          clearTimeout(timer);
          resolve(c);
        };
        const timer = setTimeout(() => {
          c.off('connected', onConnected);
          reject(new Error(`not connected within ${CONNECT_TIMEOUT_MS} ms`));
        }, CONNECT_TIMEOUT_MS);
        c.once('connected', onConnected);
      });
    }
    const c = this.zk.createClient(this.o.connect, { sessionTimeout: this.o.sessionTimeoutMs, spinDelay: 500, retries: 0 });
    if (this.o.digest !== undefined) c.addAuthInfo('digest', Buffer.from(this.o.digest));
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => {
        c.close();
        reject(new Error(`no ZooKeeper server answered within ${CONNECT_TIMEOUT_MS} ms`));
      }, CONNECT_TIMEOUT_MS);
      c.once('connected', () => {
        clearTimeout(timer);
        resolve();
      });
      c.connect();
    });
    this.client = c;
    this.armed = new Set();
    let wasConnected = true;
    let giveUp: NodeJS.Timeout | undefined;
    const expire = (why: string): void => {
      clearTimeout(giveUp);
      this.client = undefined;
      c.close();
      this.handlers?.broken(why);
      for (const lost of this.lostListeners) lost(why);
      this.lostListeners.clear();
    };
    c.on('state', (state) => {
      if (this.client !== c) return;
      if (state === this.zk.State.EXPIRED) {
        expire('session expired');
      } else if (state === this.zk.State.DISCONNECTED && wasConnected) {
        wasConnected = false;
        // Disconnected past its timeout, the session is gone on the servers' side too. And a
        // client that saw a newer zxid than an ensemble rebuilt empty is refused forever: only
        // a new client (a new session) gets back in.
        giveUp = setTimeout(() => expire('disconnected longer than the session timeout'), this.o.sessionTimeoutMs);
        giveUp.unref();
      } else if (state === this.zk.State.SYNC_CONNECTED && !wasConnected) {
        wasConnected = true;
        clearTimeout(giveUp);
        this.handlers?.broken('reconnected');
      }
    });
    return c;
  }

  // ---------------------------------------------------------------- the mirror

  private async children(c: Client, path: string): Promise<string[]> {
    const watch = this.arm(`c${path}`, () => void this.childrenChanged(path));
    try {
      return await this.call<string[]>((cb) => (watch === undefined ? c.getChildren(path, cb) : c.getChildren(path, watch, cb)));
    } catch (e) {
      this.armed.delete(`c${path}`);
      if (codeOf(e) === this.zk.Exception.NO_NODE) return [];
      throw e;
    }
  }

  private async data(c: Client, path: string): Promise<Buffer | undefined> {
    const watch = this.arm(`d${path}`, () => void this.dataChanged(path));
    try {
      const d = await this.call<Buffer>((cb) => (watch === undefined ? c.getData(path, cb) : c.getData(path, watch, cb)));
      return d ?? Buffer.alloc(0);
    } catch (e) {
      this.armed.delete(`d${path}`);
      if (codeOf(e) === this.zk.Exception.NO_NODE) return undefined;
      throw e;
    }
  }

  /** A watcher for `key` unless one is armed already (ZooKeeper fires each once). */
  private arm(key: string, fired: () => void): ((e: Event) => void) | undefined {
    if (this.armed.has(key)) return undefined;
    this.armed.add(key);
    return () => {
      this.armed.delete(key);
      fired();
    };
  }

  /** Entries of one service: its own data (a bare "host:port") and each child's. */
  private async scanService(c: Client, service: string): Promise<Map<string, Uint8Array>> {
    const out = new Map<string, Uint8Array>();
    const base = `${this.o.root}/${service}`;
    const own = await this.data(c, base);
    if (own === undefined) return out;
    if (own.length > 0) out.set(service, own);
    for (const id of await this.children(c, base)) {
      const d = await this.data(c, `${base}/${id}`);
      if (d !== undefined) out.set(`${service}/${id}`, d);
    }
    return out;
  }

  private relative(full: string): string {
    return full.slice(this.o.root.length + 1);
  }

  private childrenChanged(full: string): Promise<void> {
    return this.fired(async (c) => {
      if (full !== this.o.root) return this.rescan(c, this.relative(full));
      const services = new Set((await this.children(c, full)).filter((s) => !s.startsWith('_')));
      const added = [...services].filter((s) => !this.services.has(s));
      this.services = services;
      for (const s of added) await this.rescan(c, s);
      for (const path of [...this.known.keys()]) if (!services.has(path.split('/')[0] as string)) this.update(path, undefined);
    });
  }

  private dataChanged(full: string): Promise<void> {
    return this.fired(async (c) => {
      const d = await this.data(c, full);
      this.update(this.relative(full), d !== undefined && d.length > 0 ? d : undefined);
    });
  }

  /** Runs a fired watch's follow-up; while the tree is being listed, notes that it must be listed again. */
  private async fired(work: (c: Client) => Promise<void>): Promise<void> {
    const c = this.client;
    if (c === undefined || this.handlers === undefined) {
      this.missed = true;
      return;
    }
    try {
      await work(c);
    } catch (e) {
      this.handlers?.broken((e as Error).message);
    }
  }

  /** Lists one service again and reports what changed in it. */
  private async rescan(c: Client, service: string): Promise<void> {
    const now = await this.scanService(c, service);
    for (const path of [...this.known.keys()]) {
      if ((path === service || path.startsWith(`${service}/`)) && !now.has(path)) this.update(path, undefined);
    }
    for (const [path, value] of now) this.update(path, value);
  }

  private update(path: string, value: Uint8Array | undefined): void {
    const before = this.known.get(path);
    if (value === undefined) {
      if (before === undefined) return;
      this.known.delete(path);
    } else {
      if (before !== undefined && Buffer.compare(before, value) === 0) return;
      this.known.set(path, value);
    }
    this.handlers?.change(path, value);
  }

  /**
   * One request, failed after CALL_TIMEOUT_MS: the client parks requests made while it is
   * disconnected and never answers them if it is closed before it reconnects, which would
   * leave a write round (and every later one) waiting for good.
   */
  private call<T>(fn: (cb: (error: unknown, result: T) => void) => void): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`no answer within ${CALL_TIMEOUT_MS} ms`)), CALL_TIMEOUT_MS);
      timer.unref();
      fn((error, result) => {
        clearTimeout(timer);
        if (error) reject(error);
        else resolve(result);
      });
    });
  }
}

function codeOf(e: unknown): number | undefined {
  const f = (e as { getCode?: () => number } | null)?.getCode;
  return typeof f === 'function' ? f.call(e) : undefined;
}
