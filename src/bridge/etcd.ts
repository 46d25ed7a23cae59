/**
 * The etcd side of a bridge, on Microsoft's `etcd3` client (an optional peer dependency, loaded
 * only here): the maintained etcd v3 client for Node, speaking gRPC with leases, watches,
 * auth and TLS, retries and per-host circuit breakers built in.
 *
 * Exports live under one lease per member (TTL `ttlS`, kept alive by the client), so a crashed
 * member's keys go when its lease does. Imports are a range read at revision R and a watch from
 * R+1; a broken watch (disconnection, or a compacted start revision) is cancelled and the bridge
 * lists again rather than trusting a resumed stream.
 */
import type { Etcd3, IOptions, Lease, Watcher } from 'etcd3';
import { InvalidOptionError } from '../runtime/index.js';
import type { Store } from './bridge.js';
import type { ExportedEntry } from './entries.js';

export interface EtcdStoreOptions {
  endpoints: string[];
  prefix: string;
  ttlS: number;
  auth?: { username: string; password: string };
  tls?: { ca: Buffer; cert?: Buffer; key?: Buffer };
}

type HostPolicy = ReturnType<NonNullable<NonNullable<IOptions['faultHandling']>['host']>>;
/**
 * A host policy that runs every call (the connection pool only calls `execute`). Async, as
 * cockatiel's are: the pool reports a failure by executing a function that throws and catching
 * the promise, so a synchronous throw here would escape into the event loop.
 */
const PASS_THROUGH = { execute: async <T>(fn: (context: { signal: AbortSignal; attempt: number }) => T) => fn({ signal: new AbortController().signal, attempt: 0 }) } as unknown as HostPolicy;

/** Unary calls fail after this long; streams (watch, keepalive) are not limited. */
const CALL_TIMEOUT_MS = 5_000;

async function loadEtcd3(): Promise<typeof import('etcd3')> {
  try {
    return await import('etcd3');
  } catch {
    throw new InvalidOptionError('bridges', 'the etcd bridge needs the etcd3 package: npm install etcd3');
  }
}

export async function etcdStore(o: EtcdStoreOptions): Promise<Store> {
  const { Etcd3 } = await loadEtcd3();
  const options: IOptions = {
    hosts: o.endpoints,
    // With one endpoint there is no other host to fail over to, and the client's per-host
    // circuit breaker would only hold calls back for 5 s after etcd is back: pass them through.
    ...(o.endpoints.length === 1 ? { faultHandling: { host: () => PASS_THROUGH } } : {}),
    dialTimeout: CALL_TIMEOUT_MS,
    defaultCallOptions: (ctx) => (ctx.isStream ? {} : { deadline: Date.now() + CALL_TIMEOUT_MS }),
    ...(o.auth !== undefined ? { auth: o.auth } : {}),
    ...(o.tls !== undefined ? { credentials: { rootCertificate: o.tls.ca, ...(o.tls.key !== undefined ? { privateKey: o.tls.key } : {}), ...(o.tls.cert !== undefined ? { certChain: o.tls.cert } : {}) } } : {}),
  };
  return new EtcdStore(new Etcd3(options), o);
}

class EtcdStore implements Store {
  readonly source = 'etcd';
  readonly label: string;
  private lease: Lease | undefined;

  constructor(private readonly client: Etcd3, private readonly o: EtcdStoreOptions) {
    this.label = `etcd ${o.endpoints.join(',')} ${o.prefix}`;
  }

  fullKey(path: string): string {
    return this.o.prefix + path;
  }

  encode(entry: ExportedEntry): string {
    return JSON.stringify(entry);
  }

  async openSession(lost: (why: string) => void): Promise<void> {
    const lease = this.client.lease(this.o.ttlS, { autoKeepAlive: true });
    await lease.grant(); // a failed grant closes the lease itself
    lease.on('lost', (err) => {
      if (this.lease === lease) this.lease = undefined;
      lost(err.message);
    });
    this.lease = lease;
  }

  async put(path: string, value: string): Promise<void> {
    const lease = this.lease;
    if (lease === undefined) throw new Error('no lease');
    await lease.put(this.o.prefix + path).value(value).exec();
  }

  async remove(path: string): Promise<void> {
    await this.client.delete().key(this.o.prefix + path).exec();
  }

  async follow(reset: (all: Map<string, Uint8Array>) => void, change: (path: string, value: Uint8Array | undefined) => void, broken: (why: string) => void): Promise<() => void> {
    const listed = await this.client.getAll().prefix(this.o.prefix).exec();
    const all = new Map<string, Uint8Array>();
    for (const kv of listed.kvs) all.set(this.relative(kv.key), kv.value);
    const watcher: Watcher = await this.client.watch().prefix(this.o.prefix).startRevision((BigInt(listed.header.revision) + 1n).toString()).create();
    let stopped = false;
    const stop = (): void => {
      if (stopped) return;
      stopped = true;
      watcher.removeAllListeners();
      watcher.on('error', () => undefined);
      void watcher.cancel().catch(() => undefined);
    };
    watcher.on('put', (kv) => change(this.relative(kv.key), kv.value));
    watcher.on('delete', (kv) => change(this.relative(kv.key), undefined));
    watcher.on('disconnected', (err: Error) => broken(`disconnected: ${err.message}`));
    watcher.on('error', (err: Error) => broken(err.message));
    reset(all);
    return stop;
  }

  async list(dir: string): Promise<Map<string, Uint8Array>> {
    const out = new Map<string, Uint8Array>();
    const found = await this.client.getAll().prefix(`${this.o.prefix}${dir}/`).exec();
    for (const kv of found.kvs) out.set(this.relative(kv.key), kv.value);
    return out;
  }

  async close(): Promise<void> {
    const lease = this.lease;
    this.lease = undefined;
    // Revoking the lease deletes every key this member wrote under it, in one request.
    if (lease !== undefined) await lease.revoke().catch(() => undefined);
    this.client.close();
  }

  private relative(key: Buffer): string {
    return key.toString('utf8').slice(this.o.prefix.length);
  }
}
