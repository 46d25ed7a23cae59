/**
 * The Node runtime: drives the pure core with real sockets, a monotonic clock, crypto randomness
 * and one timer. After every input it drains the core in the documented order (transmits,
 * events, next deadline) and re-arms a single unref'd timer for the earliest deadline. Member
 * events also feed the registry, whose lookups then answer from memory; this node's own
 * services and their health checks write its record.
 */
import { EventEmitter } from 'node:events';
import { hostname } from 'node:os';
import { formatAddress, isUnicastAddress } from '../core/address.js';
import { GrapevineError, InvalidOptionError, InvalidStateError } from '../core/errors.js';
import type { MemberInfo } from '../core/members.js';
import { type MemberChange, Membership, type MembershipEvent, type MembershipStats } from '../core/membership.js';
import { REPLAY_STAMP_BYTES } from '../core/replay.js';
import { Keyring, keyFingerprint, SEAL_OVERHEAD_BYTES } from '../core/seal.js';
import { KeyringAction } from '../core/wire.js';
import { Catalog, type CatalogView, type Member } from '../registry/catalog.js';
import type { Instance, LookupFilter, PickOptions, ServiceChange } from '../registry/registry.js';
import type { WatchOptions } from '../registry/watch.js';
import { type AppChannel, appChannel } from './channels.js';
import { Driver } from './driver.js';
import { type Extension, extensionFor, extensionsOf, prepareOptions } from './extensions.js';
import { DropSummary, type Logger } from './log.js';
import { Seeds } from './seeds.js';
import { type CheckHandle, OwnServices, type Registration, type RegistrationJournal, type ServiceHandle, type StandaloneCheck } from './services.js';
import { defaultAdvertise, type GrapevineOptions, positive, validate } from './options.js';
import { cryptoRng, monotonicMs } from './system.js';
import { Transport, type TransportStats } from './transport.js';

export type { Member } from '../registry/catalog.js';
export type { CheckHandle, Persisted, Registration, RegistrationJournal, ServiceHandle, StandaloneCheck } from './services.js';
export type { BridgeCommonOptions, BridgeOptions, DnsOptions, EtcdBridgeOptions, GrapevineOptions, HttpOptions, HttpTls, ZookeeperBridgeOptions } from './options.js';

/** Events a Grapevine emits. `member` carries every membership change; each also has its own name. */
export interface GrapevineEvents {
  member: [change: { type: MemberChange; member: Member }];
  joined: [member: Member];
  suspect: [member: Member];
  alive: [member: Member];
  dead: [member: Member];
  left: [member: Member];
  updated: [member: Member];
  /** A service instance was added, updated (health, tags, ...) or removed, on any member. */
  service: [change: ServiceChange];
  /** Lifeguard local health score changed (0 is healthy). */
  health: [score: number];
  /** A peer packet was rejected (malformed, wrong key, ...); it changed nothing. */
  dropped: [info: { from: string; reason: string; detail?: string }];
  /**
   * Another process announced this member's name from `otherAddr`. `outcome`: `refuted` (this
   * member kept the name), `lost` (it gave the name up and went silent; see `nameLostTo`).
   */
  conflict: [info: { name: string; addr: string; otherAddr: string; outcome: 'refuted' | 'lost' | 'refused' }];
}

/** start() could not reach any seed in time. `option` is "seeds". */
export class JoinError extends GrapevineError {
  readonly option = 'seeds';
  constructor(message: string) {
    super('grapevine.join-failed', message);
  }
}

/** start() found this member's name alive at another address, and a process there answers to it. `option` is "name". */
export class NameConflictError extends GrapevineError {
  readonly option = 'name';
  constructor(name: string, otherAddr: string) {
    super('grapevine.name-conflict', `the name ${JSON.stringify(name)} is already alive at ${otherAddr}; choose another, or wait until that member is gone`);
  }
}

/** waitFor() saw no matching instance in time. */
export class WaitTimeoutError extends GrapevineError {
  constructor(service: string, timeoutMs: number) {
    super('grapevine.timeout', `no instance of ${JSON.stringify(service)} within ${timeoutMs} ms`);
  }
}

const MEMBER_CHANGES = new Set<string>(['joined', 'suspect', 'alive', 'dead', 'left', 'updated']);
/** How often start() repeats its join request while waiting for the seeds. */
const JOIN_RETRY_MS = 1_000;
/** Peer addresses whose check is remembered; the memo starts over when it grows past this. */
const ADDRESS_CHECKS_MAX = 20_000;

/** isUnicastAddress, remembered per address: gossip and push-pull repeat the same addresses (10,000 IPv6 ones take ~27 ms to parse). */
function unicastCheck(): (addr: string) => boolean {
  const memo = new Map<string, boolean>();
  return (addr) => {
    let ok = memo.get(addr);
    if (ok === undefined) {
      ok = isUnicastAddress(addr);
      if (memo.size >= ADDRESS_CHECKS_MAX) memo.clear();
      memo.set(addr, ok);
    }
    return ok;
  };
}

/**
 * A member of a grapevine cluster. Create one with `Grapevine.start()`; it gossips until
 * `leave()` or `close()`.
 */
export class Grapevine extends EventEmitter<GrapevineEvents> {
  /** This member's name. */
  readonly name: string;
  /** The address other members reach this one at. */
  readonly address: string;
  /** The address the sockets are bound to (port resolved). */
  readonly boundAddress: string;
  /** The keyring in use, if encryption is on: add/use/remove rotate keys live. */
  readonly keyring: Keyring | undefined;
  /** This member's gossip pool ('default' unless the `pool` option says otherwise). */
  get pool(): string {
    return this.localCatalog.pool;
  }

  /** The read side of this member's catalog (lookups, watches, change indexes), for interfaces built on it. */
  readonly catalog: CatalogView;
  private readonly core: Membership;
  private readonly localCatalog: Catalog;
  private readonly transport: Transport;
  private readonly driver: Driver;
  /** This member's instances and their checks. */
  private readonly own: OwnServices;
  /** What was registered with `persist: true`, for a data directory. */
  get registrations(): RegistrationJournal {
    return this.own;
  }
  private closing: Promise<void> | undefined;
  private leaving: Promise<void> | undefined;
  private readonly internal = new EventEmitter();
  /** Aborted at close: ends watches and pending waitFor calls. */
  private readonly lifetime = new AbortController();
  private readonly log: Logger;
  private readonly drops: DropSummary;
  /** Interfaces started by options (HTTP API, metrics); closed first. */
  private readonly extensions = new Map<string, Extension>();
  /** Until start() returns, members learned are logged at debug: a join into 10,000 members is one line, not 10,000. */
  private starting = true;

  private constructor(core: Membership, transport: Transport, keyring: Keyring | undefined, includeSuspect: boolean, pool: string, log: Logger) {
    super();
    this.core = core;
    this.log = log;
    this.drops = new DropSummary(log);
    this.transport = transport;
    this.localCatalog = new Catalog(core, { rng: cryptoRng(), includeSuspect, pool });
    this.catalog = this.localCatalog;
    this.localCatalog.load(core.members());
    this.localCatalog.onChange((change) => this.emit('service', change));
    this.own = new OwnServices(core.name, this.localCatalog, (apply) => this.input(apply), log);
    this.driver = new Driver(core, transport, (e) => this.dispatch(e));
    this.name = core.name;
    this.address = core.self().addr;
    this.boundAddress = formatAddress(transport.bound.host, transport.bound.port);
    this.keyring = keyring;
    // Every member's record says which keys it holds, so keyring listings count them (and a key is used only once all hold it).
    const showKeys = (): void => this.input((now) => this.localCatalog.setKeyFingerprints(now, keyring?.keys().map(keyFingerprint) ?? []));
    keyring?.onChange(showKeys);
    showKeys();
  }

  /**
   * Binds the sockets, starts gossiping and, when seeds are given, joins through them. Rejects
   * with InvalidOptionError (naming the option), BindError (address in use), JoinError (no seed
   * answered within joinTimeoutMs), NameConflictError (a process answers to the name at another address) or
   * the signal's reason if aborted.
   */
  static async start(options: GrapevineOptions = {}): Promise<Grapevine> {
    options = await prepareOptions(options);
    const o = validate(options);
    const transport = await Transport.open(o.bind, {
      frameBytesMax: o.config.streamBytesMax + SEAL_OVERHEAD_BYTES + REPLAY_STAMP_BYTES,
      streamTimeoutMs: o.streamTimeoutMs,
      inboundStreamsMax: o.inboundStreamsMax,
      inboundPerSourceMax: Math.max(1, Math.ceil(o.inboundStreamsMax / 8)),
      bufferedBytesMax: 2 * (o.config.streamBytesMax + SEAL_OVERHEAD_BYTES + REPLAY_STAMP_BYTES),
      outboundStreamsMax: o.inboundStreamsMax,
    });
    const advertise = o.advertise ?? defaultAdvertise(transport.bound);
    const address = formatAddress(advertise.host, advertise.port === 0 ? transport.bound.port : advertise.port);
    const name = o.name ?? `${hostname()}-${transport.bound.port}`;
    let core: Membership;
    try {
      core = new Membership({
        name, addr: address, rng: cryptoRng(), nowMs: monotonicMs(), config: o.config, acceptAddress: unicastCheck(),
        epoch: Date.now(), // grows across restarts on this host; only compared with this member's own
        ...(o.keyring !== undefined ? { keyring: o.keyring } : {}),
      });
    } catch (e) {
      await transport.close();
      throw e;
    }
    const gv = new Grapevine(core, transport, o.keyring, o.includeSuspect, o.pool, o.logger);
    o.logger.info(`member ${name} listening on ${gv.boundAddress}, reachable at ${address}${o.keyring === undefined ? ' (no keyring: packets are not encrypted)' : ''}`, {
      name, bound: gv.boundAddress, address, encrypted: o.keyring !== undefined,
    });
    const meta = o.meta;
    if (meta !== undefined) gv.input((now) => gv.localCatalog.setNodeMeta(now, meta));
    else gv.input(() => undefined);
    try {
      for (const [option, value] of extensionsOf(options)) {
        const load = extensionFor(option);
        if (load !== undefined) gv.extensions.set(option, await (await load())(gv, value, { logger: o.logger, imports: gv.localCatalog }));
      }
    } catch (e) {
      await gv.close();
      throw e;
    }
    const discovered = [...gv.extensions.values()].flatMap((e) => (e.seeds === undefined ? [] : [e.seeds.bind(e)]));
    const seeds = new Seeds(o.seeds, address, o.seedResolvers, discovered);
    if (seeds.size > 0 && !seeds.onlySelf) {
      try {
        // Seeds found in a store may be stale (a crashed member's entry outlives it by a lease): never fatal.
        await gv.join(seeds, o.joinTimeoutMs, o.retryJoin || seeds.onlyDiscovered, options.signal);
      } catch (e) {
        o.logger.error(`member ${name} could not join: ${(e as Error).message}`, { name, seeds: o.seeds });
        await gv.close();
        throw e;
      }
      if (seeds.named && o.config.rejoinIntervalMs > 0) gv.followSeedNames(seeds, o.config.rejoinIntervalMs);
    }
    gv.starting = false;
    return gv;
  }

  /**
   * Every member this node knows, itself included, with its state. Read from local memory.
   * After leave() this member shows itself `left`; after close(), `dead` (as the others will).
   */
  members(): Member[] {
    return this.core.members().map((m) => this.asSeen(m));
  }

  member(name: string): Member | undefined {
    if (typeof name !== 'string') throw new InvalidOptionError('name', 'must be a string');
    const m = this.core.member(name);
    return m === undefined ? undefined : this.asSeen(m);
  }

  /**
   * Registers a service instance of this node (same id: replaces it). With a check, resolves
   * once the check's first result is in the record. Rejects with InvalidOptionError (naming the
   * field) or OversizedError when the record would exceed protocol.recordBytesMax.
   */
  async register(registration: Registration): Promise<ServiceHandle> {
    this.assertOpen('register');
    return this.own.register(registration, (id) => this.deregister(id));
  }

  /** Removes one of this node's instances (and stops its check). False if there is none with that id. */
  async deregister(id: string): Promise<boolean> {
    if (typeof id !== 'string') throw new InvalidOptionError('id', 'must be a string');
    this.own.stop(id);
    if (this.closing !== undefined || this.leaving !== undefined) return false;
    let found = false;
    this.input((now) => {
      found = this.localCatalog.deregister(now, id);
    });
    return found;
  }

  /**
   * Adds a check to one of this member's instances (`serviceId`) or, without one, to the member
   * itself, where it counts against every instance here (Consul's node checks). Same id replaces.
   */
  addCheck(check: StandaloneCheck): Promise<CheckHandle> {
    this.assertOpen('addCheck');
    return this.own.addCheck(check);
  }

  /** Removes a check by id (an added one, or one an instance was registered with). */
  removeCheck(id: string): boolean {
    return this.own.removeCheck(id);
  }

  /** One of this member's checks by id. */
  check(id: string): CheckHandle | undefined {
    return this.own.check(id);
  }

  /**
   * Maintenance mode, as Consul's: instance `serviceId`, or without one every instance here,
   * turns critical with `reason` (lookups of healthy instances skip it) until `maintenance(false)`.
   */
  maintenance(reason: string | false, serviceId?: string): void {
    this.assertOpen('maintenance');
    this.own.maintenance(reason, serviceId);
  }

  /** Instances of `service` across the cluster, from local memory (no I/O). */
  lookup(service: string, filter?: LookupFilter): readonly Instance[] {
    return this.localCatalog.lookup(service, filter);
  }

  /** One healthy instance of `service` (round-robin unless `strategy` says otherwise), or undefined. */
  pick(service: string, options?: PickOptions): Instance | undefined {
    return this.localCatalog.pick(service, options);
  }

  /** Names of all services with at least one instance. */
  services(): string[] {
    return this.localCatalog.services();
  }

  /** Changes to `service`'s instances as an async iterator (current ones first, unless `initial: false`); ends at close. */
  watch(service: string, options: WatchOptions = {}): AsyncIterableIterator<ServiceChange> {
    const signal = options.signal === undefined ? this.lifetime.signal : AbortSignal.any([options.signal, this.lifetime.signal]);
    return this.localCatalog.watch(service, { ...options, signal });
  }

  /**
   * Resolves with an instance of `service` matching `filter` (healthy by default) as soon as
   * there is one; rejects with WaitTimeoutError after `timeoutMs`, with the signal's reason, or
   * with InvalidStateError when this member closes first.
   */
  waitFor(service: string, options: LookupFilter & { timeoutMs?: number; signal?: AbortSignal } = {}): Promise<Instance> {
    const { timeoutMs, signal, ...rest } = options ?? {};
    if (timeoutMs !== undefined) positive(timeoutMs, 'timeoutMs', 0);
    if (signal !== undefined && !(signal instanceof AbortSignal)) throw new InvalidOptionError('signal', 'must be an AbortSignal');
    const filter: LookupFilter = { healthy: true, ...rest };
    const found = (): Instance | undefined => this.localCatalog.lookup(service, filter)[0];
    const now = found();
    if (now !== undefined) return Promise.resolve(now);
    return new Promise<Instance>((resolve, reject) => {
      const cleanup = (): void => {
        unsubscribe();
        clearTimeout(timer);
        signal?.removeEventListener('abort', onAbort);
        this.lifetime.signal.removeEventListener('abort', onClose);
      };
      const unsubscribe = this.localCatalog.onChange((change) => {
        if (change.instance.service !== service) return;
        const instance = found();
        if (instance === undefined) return;
        cleanup();
        resolve(instance);
      });
      const onAbort = (): void => {
        cleanup();
        reject(signal?.reason);
      };
      const onClose = (): void => {
        cleanup();
        reject(new InvalidStateError(`waitFor(${JSON.stringify(service)}): closed`));
      };
      const timer = timeoutMs === undefined ? undefined : setTimeout(() => {
        cleanup();
        reject(new WaitTimeoutError(service, timeoutMs));
      }, timeoutMs);
      if (signal?.aborted === true) onAbort();
      else signal?.addEventListener('abort', onAbort, { once: true });
      if (this.lifetime.signal.aborted) onClose();
      else this.lifetime.signal.addEventListener('abort', onClose, { once: true });
    });
  }

  /**
   * Set once this member gave its name up to the process at this address, because both kept
   * claiming it (a `conflict` event with outcome `lost` says so too). It then stays silent; close it.
   */
  get nameLostTo(): string | undefined {
    return this.core.nameLostTo;
  }

  /** Where the interface started by start() option `option` listens: `gv.listening('http')` is "127.0.0.1:8500". */
  listening(option: string): string | undefined {
    return this.extensions.get(option)?.address;
  }

  /** Lifeguard local health score: 0 is healthy. */
  get healthScore(): number {
    return this.core.healthScore;
  }

  /** Counters from the core (protocol) and the transport (bytes on the wire). */
  stats(): { core: Readonly<MembershipStats>; transport: Readonly<TransportStats>; interfaces: Readonly<Record<string, Readonly<Record<string, number>>>> } {
    const interfaces: Record<string, Readonly<Record<string, number>>> = {};
    for (const [option, e] of this.extensions) if (e.stats !== undefined) interfaces[option] = e.stats;
    return { core: this.core.stats, transport: this.transport.stats, interfaces };
  }

  /**
   * Changes the keyring here and on every member that hears it (Consul's keyring install, use,
   * remove): installs `key`, makes it the primary, or removes it. Members' records show the keys
   * they hold (`catalog.nodeKeys`), by which the HTTP API checks that all hold a key before use.
   */
  changeKeyring(action: 'install' | 'use' | 'remove', key: Uint8Array): void {
    this.assertOpen('changeKeyring');
    const code = { install: KeyringAction.Install, use: KeyringAction.Use, remove: KeyringAction.Remove }[action];
    if (code === undefined) throw new InvalidOptionError('action', 'must be install, use or remove');
    this.input((now) => this.core.changeKeyring(now, code, key, Date.now()));
  }

  /** Channel `n` (0-255; APP_CHANNELS names this package's) for a room built on this member: the key-value store, events, queries. */
  channel(n: number): AppChannel {
    return appChannel(this.core, (apply) => this.input(apply), n);
  }

  /** Replaces this node's metadata; it spreads with the record's next version. */
  setMeta(meta: Readonly<Record<string, string>>): void {
    this.assertOpen('setMeta');
    this.input((now) => this.localCatalog.setNodeMeta(now, meta));
  }

  /**
   * Leaves gracefully: announces *left*, waits until the announcement has been sent its full
   * number of times (or `timeoutMs`, default 5 s), then closes.
   */
  leave(options: { timeoutMs?: number } = {}): Promise<void> {
    const timeoutMs = positive(options?.timeoutMs, 'timeoutMs', 5_000);
    if (this.leaving !== undefined) return this.leaving;
    if (this.closing !== undefined) return this.closing;
    // A member that gave its name up is already silent: there is nobody to announce a leave for.
    if (this.core.nameLostTo !== undefined) return this.close();
    this.leaving = new Promise<void>((resolve) => {
      const done = (): void => {
        clearTimeout(timer);
        this.internal.off('leave-disseminated', done);
        resolve();
      };
      const timer = setTimeout(done, timeoutMs);
      timer.unref();
      this.internal.on('leave-disseminated', done);
      this.input((now) => this.core.leave(now));
    }).then(() => this.close());
    return this.leaving;
  }

  /** Stops at once, without telling anyone (they will detect the silence). Idempotent. */
  close(): Promise<void> {
    if (this.closing !== undefined) return this.closing;
    this.drops.flush();
    this.drops.stop();
    this.log.info(`member ${this.name} ${this.leaving === undefined ? 'closed' : 'left'}`, { name: this.name });
    this.own.close();
    this.lifetime.abort();
    this.driver.stop();
    const extensions = [...this.extensions.values()];
    this.extensions.clear();
    this.closing = Promise.allSettled(extensions.map((e) => e.close())).then(() => this.transport.close());
    return this.closing;
  }

  /**
   * Joins through `seeds` (names looked up afresh at every attempt); after `timeoutMs` rejects
   * with JoinError, or with `retryJoin` resolves alone (the core keeps asking).
   */
  private async join(seeds: Seeds, timeoutMs: number, retryJoin: boolean, signal: AbortSignal | undefined): Promise<void> {
    signal?.throwIfAborted();
    let asked: string[] = [];
    let first = true;
    await new Promise<void>((resolve, reject) => {
      let done = false;
      const ask = (): void => {
        void seeds.resolve().then((list) => {
          const alone = first && list.length === 0 && seeds.onlyDiscovered;
          first = false;
          if (alone && !done) {
            cleanup();
            this.log.info(`member ${this.name}: no other member of its pool is known yet; starting a new cluster`, { name: this.name });
            resolve();
            return;
          }
          if (done || list.length === 0 || this.closing !== undefined) return;
          asked = list;
          this.input((now) => this.core.join(now, list));
        });
      };
      // Seeds that answered that they cannot read our packets (keys differ): said at once, and in the outcome.
      const refused = new Map<string, string>();
      const onDropped = ({ from, reason, detail }: { from: string; reason: string; detail?: string }): void => {
        if (reason !== 'key-refused' || refused.has(from) || !asked.includes(from)) return;
        refused.set(from, detail ?? '');
        this.log.warn(`seed ${from} answered, but ${detail ?? 'keys differ'}`, { seed: from });
      };
      const cleanup = (): void => {
        done = true;
        clearTimeout(deadline);
        clearInterval(retry);
        this.off('dropped', onDropped);
        this.internal.off('synced', onSynced);
        this.internal.off('conflict', onConflict);
        signal?.removeEventListener('abort', onAbort);
      };
      const onSynced = (event: { join: boolean; members: number }): void => {
        if (!event.join) return;
        cleanup();
        this.log.info(`member ${this.name} joined: ${this.core.members().length} members known`, { name: this.name, members: this.core.members().length });
        resolve();
      };
      const onConflict = (event: { outcome: string; otherAddr: string }): void => {
        // Refused, or lost while still joining: either way the name is not ours, and the core
        // takes no more join commands (the retry timer would otherwise call one that throws).
        if (event.outcome === 'refuted') return;
        cleanup();
        reject(new NameConflictError(this.name, event.otherAddr));
      };
      const onAbort = (): void => {
        cleanup();
        reject(signal?.reason);
      };
      const deadline = setTimeout(() => {
        cleanup();
        if (retryJoin) {
          this.log.warn(`no seed answered within ${timeoutMs} ms (${described()}); running alone and asking them again every few seconds`, { seeds: asked });
          resolve();
        } else reject(new JoinError(`no seed answered within ${timeoutMs} ms: ${described()}`));
      }, timeoutMs);
      const described = (): string => (asked.length === 0 ? 'no seed address resolved'
        : asked.map((a) => (refused.has(a) ? `${a} (answered: ${refused.get(a) as string})` : a)).join(', '));
      const retry = setInterval(ask, JOIN_RETRY_MS);
      this.on('dropped', onDropped);
      this.internal.on('synced', onSynced);
      this.internal.on('conflict', onConflict);
      signal?.addEventListener('abort', onAbort, { once: true });
      ask();
    });
  }

  /** Looks seed names up again every `everyMs`; a changed answer is joined (the core keeps asking the seeds it lacks). */
  private followSeedNames(seeds: Seeds, everyMs: number): void {
    let last = '';
    const refresh = (): void => {
      void seeds.resolve().then((list) => {
        const key = [...list].sort().join(',');
        if (key === last || list.length === 0 || this.closing !== undefined || this.leaving !== undefined || this.core.nameLostTo !== undefined) return;
        last = key;
        this.log.debug(`seed names now resolve to ${list.join(', ')}`, { seeds: list });
        this.input((now) => this.core.join(now, list));
      });
    };
    const timer = setInterval(refresh, everyMs);
    timer.unref();
    this.lifetime.signal.addEventListener('abort', () => clearInterval(timer), { once: true });
  }

  private input(apply: (nowMs: number) => void): void {
    this.driver.input(apply);
  }

  private dispatch(e: MembershipEvent): void {
    if ('member' in e) {
      this.localCatalog.handleEvent(e);
      const member = this.localCatalog.toMember(e.member);
      this.logMember(e.type, member);
      this.emit('member', { type: e.type, member });
      if (MEMBER_CHANGES.has(e.type)) this.emit(e.type, member);
      return;
    }
    switch (e.type) {
      case 'health':
        this.log.debug(`local health score ${e.score} (0 is healthy; higher means this process answers slowly and probes less)`, { score: e.score });
        this.emit('health', e.score);
        break;
      case 'dropped':
        this.drops.add(e.from, e.reason);
        this.emit('dropped', { from: e.from, reason: e.reason, ...(e.detail !== undefined ? { detail: e.detail } : {}) });
        break;
      case 'conflict':
        if (e.outcome === 'lost') this.log.error(`member ${e.name} gave its name up to the process at ${e.otherAddr}, which kept claiming it; this member is now silent`, { ...e });
        else this.log.warn(`another process claims the name ${e.name} from ${e.otherAddr} (${e.outcome})`, { ...e });
        this.internal.emit('conflict', e);
        this.emit('conflict', { name: e.name, addr: e.addr, otherAddr: e.otherAddr, outcome: e.outcome });
        break;
      case 'synced': this.internal.emit('synced', e); break;
      case 'leave-disseminated': this.internal.emit('leave-disseminated'); break;
    }
  }

  private asSeen(info: MemberInfo): Member {
    const member = this.localCatalog.toMember(info);
    if (info.name !== this.name || this.closing === undefined) return member;
    return { ...member, state: this.leaving !== undefined ? 'left' : 'dead' };
  }

  private logMember(type: MemberChange, m: Member): void {
    const fields = { member: m.name, addr: m.addr, incarnation: m.incarnation };
    switch (type) {
      case 'joined': return this.log[this.starting ? 'debug' : 'info'](`member ${m.name} joined at ${m.addr}`, fields);
      case 'left': return this.log.info(`member ${m.name} left`, fields);
      case 'dead': return this.log.warn(`member ${m.name} at ${m.addr} is dead: it stopped answering probes`, fields);
      case 'alive': return this.log.info(`member ${m.name} is alive again`, fields);
      case 'suspect': return this.log.debug(`member ${m.name} is suspected: a probe went unanswered`, fields);
      case 'updated': return this.log.debug(`member ${m.name} updated its record`, fields);
    }
  }

  private assertOpen(what: string): void {
    if (this.closing !== undefined || this.leaving !== undefined) throw new InvalidStateError(`${what} after leave or close`);
  }
}
