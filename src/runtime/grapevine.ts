/**
 * The Node runtime: drives the pure core with real sockets, a monotonic clock, crypto randomness
 * and one timer. After every input it drains the core in the documented order (transmits,
 * events, next deadline) and re-arms a single unref'd timer for the earliest deadline. Member
 * events also feed the registry, whose lookups then answer from memory; this node's own
 * services and their health checks write its record.
 */
import { EventEmitter } from 'node:events';
import { hostname, networkInterfaces } from 'node:os';
import { type Config, type ConfigOptions, type ProfileName, resolveConfig } from '../core/config.js';
import { GrapevineError, InvalidOptionError, InvalidStateError } from '../core/errors.js';
import { type MemberChange, Membership, type MembershipEvent, type MembershipStats } from '../core/membership.js';
import type { MemberInfo } from '../core/members.js';
import { Keyring, SEAL_OVERHEAD_BYTES } from '../core/seal.js';
import { type CheckDefinition, HealthCheck } from './health-check.js';
import { LocalRecord } from '../registry/local.js';
import { checkMeta, decodeRecord, type Health, type ServiceDefinition } from '../registry/record.js';
import { type Instance, type LookupFilter, type PickOptions, Registry, type ServiceChange } from '../registry/registry.js';
import { watchService, type WatchOptions } from '../registry/watch.js';
import { type Address, formatAddress, parseAddress } from '../core/address.js';
import { cryptoRng, monotonicMs } from './system.js';
import { Transport, type TransportStats } from './transport.js';

export interface GrapevineOptions {
  /** Unique member name. Default: `<hostname>-<port>`. Reuse it after a restart to rejoin as the same member. */
  name?: string;
  /** Where to listen, UDP and TCP on one port: "host:port", IPv6 as "[::1]:7946". Port 0 picks one. Default "0.0.0.0:7946". */
  bind?: string;
  /**
   * The address peers should use (behind NAT or in containers it differs from bind). Default: the
   * bind address, or the first non-internal IPv4 address when bound to a wildcard; port 0 means
   * the bound port.
   */
  advertise?: string;
  /** Addresses of existing members to join through. Empty or omitted: start a new cluster. */
  seeds?: readonly string[];
  /** Protocol preset: "lan" (default), "wan" or "local". */
  profile?: ProfileName;
  /** Overrides of individual protocol parameters (see Config). */
  protocol?: Omit<ConfigOptions, 'profile'>;
  /** 32-byte keys; the first seals outgoing packets, any opens incoming ones. Or a Keyring to share. */
  keyring?: readonly Uint8Array[] | Keyring;
  /** Node metadata, part of this member's record (with its services). */
  meta?: Readonly<Record<string, string>>;
  /** Whether a suspect member's instances stay in lookups, marked `suspect`. Default true. */
  includeSuspect?: boolean;
  /** How long start() waits for a seed to answer before rejecting. Default 10 s. */
  joinTimeoutMs?: number;
  /** Longest a TCP stream (push-pull, fallback ping) may take. Default 10 s, as memberlist's TCPTimeout. */
  streamTimeoutMs?: number;
  /** Concurrent inbound TCP streams before new ones are refused. Default 64. */
  inboundStreamsMax?: number;
  /** Aborts start() while it is joining. */
  signal?: AbortSignal;
}

/** A member as the runtime reports it: its node metadata decoded from its record. */
export type Member = Omit<MemberInfo, 'record'> & { meta: Readonly<Record<string, string>> };

/** A service to register, optionally with a health check that keeps its health current. */
export type Registration = ServiceDefinition & { check?: CheckDefinition };

/** What register() returns: the instance id, TTL heartbeats, and a way to deregister. */
export interface ServiceHandle {
  readonly id: string;
  /** The instance's current health (from its check, or as registered). */
  readonly health: Health;
  /** TTL checks: report in. */
  pass(): void;
  warn(): void;
  fail(): void;
  deregister(): Promise<boolean>;
}

/** Events a Grapevine emits. `member` carries every membership change; each also has its own name. */
export type GrapevineEvents = {
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
  /** Another process announced this member's name from `otherAddr`. */
  conflict: [info: { name: string; addr: string; otherAddr: string }];
};

/** start() could not reach any seed in time. `option` is "seeds". */
export class JoinError extends GrapevineError {
  readonly option = 'seeds';
  constructor(message: string) {
    super('grapevine.join-failed', message);
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
  private readonly core: Membership;
  private readonly registry: Registry;
  private readonly local: LocalRecord;
  private readonly checks = new Map<string, HealthCheck>();
  private transport!: Transport;
  private timer: NodeJS.Timeout | undefined;
  private timerDeadline = Number.POSITIVE_INFINITY;
  private pumping = false;
  private repump = false;
  private closing: Promise<void> | undefined;
  private leaving: Promise<void> | undefined;
  private readonly internal = new EventEmitter();
  /** Aborted at close: ends watches and pending waitFor calls. */
  private readonly lifetime = new AbortController();

  private constructor(core: Membership, name: string, address: string, bound: Address, keyring: Keyring | undefined, includeSuspect: boolean) {
    super();
    this.core = core;
    this.registry = new Registry({ rng: cryptoRng(), includeSuspect });
    this.local = new LocalRecord(core, this.registry);
    this.registry.onChange((change) => this.emit('service', change));
    this.name = name;
    this.address = address;
    this.boundAddress = formatAddress(bound.host, bound.port);
    this.keyring = keyring;
  }

  /**
   * Binds the sockets, starts gossiping and, when seeds are given, joins through them. Rejects
   * with InvalidOptionError (naming the option), BindError (address in use), JoinError (no seed
   * answered within joinTimeoutMs) or the signal's reason if aborted.
   */
  static async start(options: GrapevineOptions = {}): Promise<Grapevine> {
    const o = validate(options);
    let gv: Grapevine | undefined;
    let core: Membership | undefined;
    const handlers = {
      datagram: (from: string, bytes: Uint8Array) => gv?.input((now) => core?.handleDatagram(now, from, bytes)),
      stream: (from: string, bytes: Uint8Array) => {
        let reply: Uint8Array | undefined;
        gv?.input((now) => {
          reply = core?.handleStream(now, from, bytes);
        });
        return reply;
      },
      streamReply: (from: string, bytes: Uint8Array) => gv?.input((now) => core?.handleStream(now, from, bytes)),
    };
    const transport = await Transport.open(o.bind, {
      frameBytesMax: o.config.streamBytesMax + SEAL_OVERHEAD_BYTES,
      streamTimeoutMs: o.streamTimeoutMs,
      inboundStreamsMax: o.inboundStreamsMax,
      outboundStreamsMax: o.inboundStreamsMax,
    }, handlers);
    const advertise = o.advertise ?? defaultAdvertise(transport.bound);
    const address = formatAddress(advertise.host, advertise.port === 0 ? transport.bound.port : advertise.port);
    const name = o.name ?? `${hostname()}-${transport.bound.port}`;
    try {
      core = new Membership({
        name, addr: address, rng: cryptoRng(), nowMs: monotonicMs(), config: o.config,
        ...(o.keyring !== undefined ? { keyring: o.keyring } : {}),
      });
    } catch (e) {
      await transport.close();
      throw e;
    }
    gv = new Grapevine(core, name, address, transport.bound, o.keyring, o.includeSuspect);
    gv.transport = transport;
    const local = gv.local;
    if (o.meta !== undefined) gv.input((now) => local.setNodeMeta(now, o.meta as Record<string, string>));
    else gv.input(() => undefined);
    const seeds = o.seeds.filter((s) => s !== address);
    if (seeds.length > 0) {
      try {
        await gv.join(seeds, o.joinTimeoutMs, options.signal);
      } catch (e) {
        await gv.close();
        throw e;
      }
    }
    return gv;
  }

  /** Every member this node knows, itself included, with its state. Read from local memory. */
  members(): Member[] {
    return this.core.members().map((m) => this.toMember(m));
  }

  member(name: string): Member | undefined {
    const m = this.core.member(name);
    return m === undefined ? undefined : this.toMember(m);
  }

  /**
   * Registers a service instance of this node (same id: replaces it). With a check, resolves
   * once the check's first result is in the record. Rejects with InvalidOptionError (naming the
   * field) or OversizedError when the record would exceed protocol.recordBytesMax.
   */
  async register(registration: Registration): Promise<ServiceHandle> {
    this.assertOpen('register');
    const { check: checkDef, ...def } = registration ?? ({} as Registration);
    const check = checkDef === undefined ? undefined : new HealthCheck(checkDef, (health) => {
      if (this.closing === undefined) this.input((now) => this.local.setHealth(now, id, health));
    });
    let id = '';
    this.input((now) => {
      id = this.local.register(now, check === undefined ? def : { ...def, health: 'critical' });
    });
    this.checks.get(id)?.stop();
    if (check !== undefined) {
      this.checks.set(id, check);
      await check.start();
    }
    const gv = this;
    return {
      id,
      get health(): Health {
        return gv.registry.lookup(def.name).find((i) => i.node === gv.name && i.id === id)?.health ?? 'critical';
      },
      pass: () => check?.pass(),
      warn: () => check?.warn(),
      fail: () => check?.fail(),
      deregister: () => this.deregister(id),
    };
  }

  /** Removes one of this node's instances (and stops its check). False if there is none with that id. */
  async deregister(id: string): Promise<boolean> {
    this.checks.get(id)?.stop();
    this.checks.delete(id);
    if (this.closing !== undefined || this.leaving !== undefined) return false;
    let found = false;
    this.input((now) => {
      found = this.local.deregister(now, id);
    });
    return found;
  }

  /** Instances of `service` across the cluster, from local memory (no I/O). */
  lookup(service: string, filter?: LookupFilter): readonly Instance[] {
    return this.registry.lookup(service, filter);
  }

  /** One healthy instance of `service` (round-robin unless `strategy` says otherwise), or undefined. */
  pick(service: string, options?: PickOptions): Instance | undefined {
    return this.registry.pick(service, options);
  }

  /** Names of all services with at least one instance. */
  services(): string[] {
    return this.registry.services();
  }

  /** Changes to `service`'s instances as an async iterator (current ones first, unless `initial: false`); ends at close. */
  watch(service: string, options: WatchOptions = {}): AsyncIterableIterator<ServiceChange> {
    const signal = options.signal === undefined ? this.lifetime.signal : AbortSignal.any([options.signal, this.lifetime.signal]);
    return watchService(this.registry, service, { ...options, signal });
  }

  /**
   * Resolves with an instance of `service` matching `filter` (healthy by default) as soon as
   * there is one; rejects with WaitTimeoutError after `timeoutMs`, with the signal's reason, or
   * with InvalidStateError when this member closes first.
   */
  waitFor(service: string, options: LookupFilter & { timeoutMs?: number; signal?: AbortSignal } = {}): Promise<Instance> {
    const { timeoutMs, signal, ...rest } = options;
    const filter: LookupFilter = { healthy: true, ...rest };
    const found = (): Instance | undefined => this.registry.lookup(service, filter)[0];
    const now = found();
    if (now !== undefined) return Promise.resolve(now);
    return new Promise<Instance>((resolve, reject) => {
      const cleanup = (): void => {
        unsubscribe();
        clearTimeout(timer);
        signal?.removeEventListener('abort', onAbort);
        this.lifetime.signal.removeEventListener('abort', onClose);
      };
      const unsubscribe = this.registry.onChange((change) => {
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

  /** Lifeguard local health score: 0 is healthy. */
  get healthScore(): number {
    return this.core.healthScore;
  }

  /** Counters from the core (protocol) and the transport (bytes on the wire). */
  stats(): { core: Readonly<MembershipStats>; transport: Readonly<TransportStats> } {
    return { core: this.core.stats, transport: this.transport.stats };
  }

  /** Replaces this node's metadata; it spreads with the record's next version. */
  setMeta(meta: Readonly<Record<string, string>>): void {
    this.assertOpen('setMeta');
    this.input((now) => this.local.setNodeMeta(now, meta));
  }

  /**
   * Leaves gracefully: announces *left*, waits until the announcement has been sent its full
   * number of times (or `timeoutMs`, default 5 s), then closes.
   */
  leave(options: { timeoutMs?: number } = {}): Promise<void> {
    if (this.leaving !== undefined) return this.leaving;
    if (this.closing !== undefined) return this.closing;
    const timeoutMs = options.timeoutMs ?? 5_000;
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
    for (const check of this.checks.values()) check.stop();
    this.checks.clear();
    this.lifetime.abort();
    if (this.timer !== undefined) clearTimeout(this.timer);
    this.timer = undefined;
    this.closing = this.transport.close();
    return this.closing;
  }

  private async join(seeds: string[], timeoutMs: number, signal: AbortSignal | undefined): Promise<void> {
    signal?.throwIfAborted();
    await new Promise<void>((resolve, reject) => {
      const cleanup = (): void => {
        clearTimeout(deadline);
        clearInterval(retry);
        this.internal.off('synced', onSynced);
        signal?.removeEventListener('abort', onAbort);
      };
      const onSynced = (event: { join: boolean }): void => {
        if (!event.join) return;
        cleanup();
        resolve();
      };
      const onAbort = (): void => {
        cleanup();
        reject(signal?.reason);
      };
      const deadline = setTimeout(() => {
        cleanup();
        reject(new JoinError(`no seed answered within ${timeoutMs} ms: ${seeds.join(', ')}`));
      }, timeoutMs);
      const retry = setInterval(() => this.input((now) => this.core.join(now, seeds)), JOIN_RETRY_MS);
      this.internal.on('synced', onSynced);
      signal?.addEventListener('abort', onAbort, { once: true });
      this.input((now) => this.core.join(now, seeds));
    });
  }

  /** Runs one input against the core, then drains it. Re-entrant calls (from listeners) are queued. */
  private input(apply: (nowMs: number) => void): void {
    if (this.closing !== undefined) return;
    apply(monotonicMs());
    if (this.pumping) {
      this.repump = true;
      return;
    }
    this.pumping = true;
    try {
      do {
        this.repump = false;
        this.drain();
      } while (this.repump);
    } finally {
      this.pumping = false;
    }
    this.arm();
  }

  private drain(): void {
    const core = this.core;
    for (let t = core.pollTransmit(); t !== undefined; t = core.pollTransmit()) {
      if (t.stream) this.transport.sendStream(t.addr, t.bytes);
      else this.transport.sendDatagram(t.addr, t.bytes);
    }
    for (let e = core.pollEvent(); e !== undefined; e = core.pollEvent()) this.dispatch(e);
  }

  private dispatch(e: MembershipEvent): void {
    if ('member' in e) {
      this.local.handleEvent(e);
      const member = this.toMember(e.member);
      this.emit('member', { type: e.type, member });
      if (MEMBER_CHANGES.has(e.type)) this.emit(e.type, member);
      return;
    }
    switch (e.type) {
      case 'health': this.emit('health', e.score); break;
      case 'dropped': this.emit('dropped', { from: e.from, reason: e.reason, ...(e.detail !== undefined ? { detail: e.detail } : {}) }); break;
      case 'conflict': this.emit('conflict', { name: e.name, addr: e.addr, otherAddr: e.otherAddr }); break;
      case 'synced': this.internal.emit('synced', e); break;
      case 'leave-disseminated': this.internal.emit('leave-disseminated'); break;
    }
  }

  /** Keeps exactly one unref'd timer, set for the core's earliest deadline. */
  private arm(): void {
    if (this.closing !== undefined) return;
    const deadline = this.core.pollTimeoutMs() ?? Number.POSITIVE_INFINITY;
    if (deadline === this.timerDeadline && this.timer !== undefined) return;
    if (this.timer !== undefined) clearTimeout(this.timer);
    this.timer = undefined;
    this.timerDeadline = deadline;
    if (deadline === Number.POSITIVE_INFINITY) return;
    this.timer = setTimeout(() => {
      this.timer = undefined;
      this.input((now) => this.core.handleTimeout(now));
    }, Math.max(0, Math.ceil(deadline - monotonicMs())));
    this.timer.unref();
  }

  private toMember(m: MemberInfo): Member {
    let meta = this.registry.nodeMeta(m.name);
    if (meta === undefined) {
      const record = decodeRecord(m.record);
      meta = typeof record === 'string' ? {} : record.meta;
    }
    const { record: _bytes, ...rest } = m;
    return { ...rest, meta };
  }

  private assertOpen(what: string): void {
    if (this.closing !== undefined || this.leaving !== undefined) throw new InvalidStateError(`${what} after leave or close`);
  }
}

interface ValidOptions {
  name: string | undefined;
  bind: Address;
  advertise: Address | undefined;
  seeds: string[];
  config: Config;
  keyring: Keyring | undefined;
  meta: Readonly<Record<string, string>> | undefined;
  includeSuspect: boolean;
  joinTimeoutMs: number;
  streamTimeoutMs: number;
  inboundStreamsMax: number;
}

const KNOWN_OPTIONS = new Set([
  'name', 'bind', 'advertise', 'seeds', 'profile', 'protocol', 'keyring', 'meta', 'joinTimeoutMs', 'streamTimeoutMs',
  'inboundStreamsMax', 'signal', 'includeSuspect',
]);

function validate(options: GrapevineOptions): ValidOptions {
  if (options === null || typeof options !== 'object') throw new InvalidOptionError('options', 'must be an object');
  for (const key of Object.keys(options)) if (!KNOWN_OPTIONS.has(key)) throw new InvalidOptionError(key, 'unknown option');
  if (options.name !== undefined && (typeof options.name !== 'string' || options.name.length === 0)) {
    throw new InvalidOptionError('name', 'must be a non-empty string');
  }
  const bind = parseAddress(options.bind ?? '0.0.0.0:7946', 'bind');
  if (bind.family === 0) throw new InvalidOptionError('bind', 'must be an IP address, not a host name');
  const advertise = options.advertise === undefined ? undefined : parseAddress(options.advertise, 'advertise');
  if (options.seeds !== undefined && !Array.isArray(options.seeds)) throw new InvalidOptionError('seeds', 'must be an array of "host:port"');
  const seeds = (options.seeds ?? []).map((s) => {
    const a = parseAddress(s, 'seeds');
    if (a.port === 0) throw new InvalidOptionError('seeds', `${s} has port 0`);
    return formatAddress(a.host, a.port);
  });
  const config = resolveConfig({ ...(options.protocol ?? {}), ...(options.profile !== undefined ? { profile: options.profile } : {}) });
  let keyring: Keyring | undefined;
  if (options.keyring instanceof Keyring) keyring = options.keyring;
  else if (options.keyring !== undefined) {
    if (!Array.isArray(options.keyring)) throw new InvalidOptionError('keyring', 'must be an array of 32-byte keys or a Keyring');
    keyring = new Keyring(options.keyring);
  }
  const meta = options.meta === undefined ? undefined : checkMeta(options.meta, 'meta');
  if (options.includeSuspect !== undefined && typeof options.includeSuspect !== 'boolean') {
    throw new InvalidOptionError('includeSuspect', 'must be a boolean');
  }
  return {
    name: options.name, bind, advertise, seeds, config, keyring, meta, includeSuspect: options.includeSuspect ?? true,
    joinTimeoutMs: positive(options.joinTimeoutMs, 'joinTimeoutMs', 10_000),
    streamTimeoutMs: positive(options.streamTimeoutMs, 'streamTimeoutMs', 10_000),
    inboundStreamsMax: positive(options.inboundStreamsMax, 'inboundStreamsMax', 64),
  };
}

function positive(value: number | undefined, option: string, fallback: number): number {
  if (value === undefined) return fallback;
  if (typeof value !== 'number' || !Number.isFinite(value) || value <= 0) throw new InvalidOptionError(option, 'must be a positive number');
  return value;
}

/** A wildcard bind is no address to give peers: use the first external IPv4 address, else loopback. */
function defaultAdvertise(bound: Address): Address {
  if (bound.host !== '0.0.0.0' && bound.host !== '::') return bound;
  for (const list of Object.values(networkInterfaces())) {
    for (const ni of list ?? []) {
      if (!ni.internal && ni.family === 'IPv4') return { host: ni.address, port: bound.port, family: 4 };
    }
  }
  return { host: bound.family === 6 ? '::1' : '127.0.0.1', port: bound.port, family: bound.family === 6 ? 6 : 4 };
}
