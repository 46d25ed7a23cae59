/** The options of `Grapevine.start()`, and their validation: every option is checked, and a bad one is an InvalidOptionError naming it. */
import { networkInterfaces } from 'node:os';
import { type Address, ipFamily, parseAddress } from '../core/address.js';
import { type Config, type ConfigOptions, type ProfileName, resolveConfig } from '../core/config.js';
import { InvalidOptionError } from '../core/errors.js';
import { Keyring } from '../core/seal.js';
import { checkMeta } from '../registry/record.js';
import { extensionFor } from './extensions.js';
import { parseSeed } from './seeds.js';
import { atLevel, checkLogger, type Logger, type LogLevel } from './log.js';

/** The DNS interface's options (src/dns serves them). */
export interface DnsOptions {
  /** "host:port" for UDP and TCP. Default 127.0.0.1:8600. */
  bind?: string;
  /** The domain answered for. Default "grapevine"; "consul" lets Consul-era tooling work unchanged. */
  domain?: string;
  /** TTL of every record, seconds. Default 0: answers never outlive the catalog. */
  ttlS?: number;
  /** Records of each kind in a UDP answer. Default 3, as Consul's udp_answer_limit. */
  udpAnswerLimit?: number;
  /** Queries per second from one source address. Default 1,000. */
  rateLimit?: number;
}

/** The HTTP API's options (src/http serves them): where to listen and who may use it. */
export interface HttpOptions {
  /** "host:port" to listen on. Default 127.0.0.1:8500. */
  bind?: string;
  /** With a token every write needs it (X-Consul-Token or Authorization: Bearer), and reads too unless `readOpen`. */
  token?: string;
  /** Reads without the token. Default false. */
  readOpen?: boolean;
  /** Allow a bind beyond loopback without a token (refused otherwise). Default false. */
  allowInsecure?: boolean;
  /** Blocking queries held at once; more get 429. Default 4,096. */
  blockingQueriesMax?: number;
  /** Serve HTTPS: PEM certificate chain and key, a CA (PEM) for client certificates, and whether one is required (it then stands for the token). */
  tls?: HttpTls;
}

export interface HttpTls {
  cert: string | Uint8Array;
  key: string | Uint8Array;
  ca?: string | Uint8Array;
  requireClientCert?: boolean;
}

/** What every bridge (src/bridge) takes besides its store's address. */
export interface BridgeCommonOptions {
  /** Write this member's own instances to the store. Default true. */
  export?: boolean;
  /** Show the store's other entries in lookups, watches, HTTP and DNS. Default true. */
  import?: boolean;
  /** Advertise this member's gossip address under `_members/<pool>/` and join through the others found there. Default true. */
  seeds?: boolean;
  /** Write rounds per store: up to 3 at once, then one per this many ms on average, so a flapping check cannot hammer the store. Default 1,000. */
  writeIntervalMs?: number;
}

export interface EtcdBridgeOptions extends BridgeCommonOptions {
  /** "http://127.0.0.1:2379", or several. */
  endpoints: string | readonly string[];
  /** Key prefix. Default "services/", so `etcdctl put services/web 10.0.0.1:80` is read as is. */
  prefix?: string;
  /** TTL of this member's lease, seconds: how long its entries outlive a crash. Default 10. */
  ttlS?: number;
  auth?: { username: string; password: string };
  /** PEM contents (not paths): the CA, and a client certificate and key if etcd asks for one. */
  tls?: { ca: string | Uint8Array; cert?: string | Uint8Array; key?: string | Uint8Array };
}

export interface ZookeeperBridgeOptions extends BridgeCommonOptions {
  /** "127.0.0.1:2181", or "host:port,host:port" (an optional chroot may follow). */
  connect: string;
  /** The znode services live under, as Curator's basePath. Default "/services". */
  root?: string;
  /** Session timeout, ms: how long this member's ephemeral znodes outlive a crash. Default 10,000. */
  sessionTimeoutMs?: number;
  /** Digest auth: "user:password". */
  auth?: { digest: string };
}

/** One bridge: `{ etcd: {...} }` or `{ zookeeper: {...} }`. */
export type BridgeOptions = { etcd: EtcdBridgeOptions } | { zookeeper: ZookeeperBridgeOptions };

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
  /**
   * DNS servers for seed names ("dns:..." and "dns+srv:..." seeds), as "host:port". Default:
   * the system's resolvers.
   */
  seedResolvers?: readonly string[];
  /** Protocol preset: "lan" (default), "wan" or "local". */
  profile?: ProfileName;
  /** Overrides of individual protocol parameters (see Config). */
  protocol?: Omit<ConfigOptions, 'profile'>;
  /**
   * Failure detection in the terms you think in. `pauseToleranceMs`: the longest stall (a GC
   * pause, CPU starvation, a stopped container) a live member must survive without being
   * declared dead (default 3000 on the lan and local profiles; 0 on wan: memberlist's detector).
   * Suspicion timeouts follow from it, and a crash is then detected in about one probe round
   * plus this. Same as `protocol.pauseToleranceMs`.
   */
  detection?: { pauseToleranceMs?: number };
  /** 32-byte keys; the first seals outgoing packets, any opens incoming ones. Or a Keyring to share. */
  keyring?: readonly Uint8Array[] | Keyring;
  /** Node metadata, part of this member's record (with its services). */
  meta?: Readonly<Record<string, string>>;
  /** Whether a suspect member's instances stay in lookups, marked `suspect`. Default true. */
  includeSuspect?: boolean;
  /**
   * The name of this gossip pool: every member of one cluster gives the same. Bridges write it
   * beside each exported instance, so pools federated through etcd or ZooKeeper tell their own
   * instances (never imported back) from another pool's; `pick` prefers its own pool's. Default "default".
   */
  pool?: string;
  /** How long start() waits for a seed to answer before rejecting. Default 10 s. */
  joinTimeoutMs?: number;
  /**
   * When no seed answers within joinTimeoutMs, resolve start() anyway (alone) instead of
   * rejecting with JoinError. Default false, so a wrong seed list fails loudly; the agent turns
   * it on. Either way a member keeps asking every seed it does not hold alive, every
   * `protocol.rejoinIntervalMs` (15 s on LAN), so clusters heal once seeds come back.
   */
  retryJoin?: boolean;
  /** Longest a TCP stream (push-pull, fallback ping) may take. Default 10 s, as memberlist's TCPTimeout. */
  streamTimeoutMs?: number;
  /** Concurrent inbound TCP streams before new ones are refused. Default 64. */
  inboundStreamsMax?: number;
  /** Aborts start() while it is joining. */
  signal?: AbortSignal;
  /**
   * Where to log joins, leaves, deaths, name conflicts and summaries of dropped input: any object
   * with debug/info/warn/error (console, pino). Each is called with a message and an object of
   * fields. Default: silent.
   */
  logger?: Logger;
  /** The least level passed to `logger`: debug (suspicions, health scores), info (default), warn, error or silent. */
  logLevel?: LogLevel | 'silent';
  /**
   * Serve the Consul-compatible HTTP API, /metrics and the status page: "127.0.0.1:8500", or
   * options. Loaded only when given.
   */
  http?: string | HttpOptions;
  /** Serve DNS (A, AAAA, SRV, TXT from the catalog): "127.0.0.1:8600", or options. Loaded only when given. */
  dns?: string | DnsOptions;
  /** Add grapevine's metrics to your own prom-client registry (`metrics: { registry }`). Loaded only when given. */
  metrics?: { registry?: object };
  /**
   * Bridges to etcd or ZooKeeper: export this member's instances, import the store's others,
   * find seeds there; pools that cannot reach each other federate through one. Loaded only when given.
   */
  bridges?: readonly BridgeOptions[];
  /**
   * A directory this member keeps what it was told in across restarts: registrations and checks
   * made with `persist: true`, its name (used when `name` is not given), its keyring as rotated
   * (used instead of `keyring` once saved) and the members last seen alive (seeds for the next
   * start). One member per directory. Loaded only when given.
   */
  dataDir?: string;
}

export interface ValidOptions {
  name: string | undefined;
  bind: Address;
  advertise: Address | undefined;
  seeds: string[];
  seedResolvers: string[] | undefined;
  config: Config;
  keyring: Keyring | undefined;
  meta: Readonly<Record<string, string>> | undefined;
  includeSuspect: boolean;
  pool: string;
  joinTimeoutMs: number;
  retryJoin: boolean;
  streamTimeoutMs: number;
  inboundStreamsMax: number;
  logger: Logger;
}

const KNOWN_OPTIONS = new Set([
  'name', 'bind', 'advertise', 'seeds', 'seedResolvers', 'profile', 'protocol', 'keyring', 'meta', 'joinTimeoutMs', 'retryJoin', 'streamTimeoutMs',
  'inboundStreamsMax', 'signal', 'includeSuspect', 'logger', 'logLevel', 'pool', 'detection',
]);

export function validate(options: GrapevineOptions): ValidOptions {
  if (options === null || typeof options !== 'object') throw new InvalidOptionError('options', 'must be an object');
  for (const key of Object.keys(options)) {
    if (!KNOWN_OPTIONS.has(key) && (options as Record<string, unknown>)[key] !== undefined && extensionFor(key) === undefined) {
      throw new InvalidOptionError(key, 'unknown option');
    }
  }
  if (options.name !== undefined && (typeof options.name !== 'string' || options.name.length === 0)) {
    throw new InvalidOptionError('name', 'must be a non-empty string');
  }
  const bind = parseAddress(options.bind ?? '0.0.0.0:7946', 'bind');
  if (bind.family === 0) throw new InvalidOptionError('bind', 'must be an IP address, not a host name');
  const advertise = options.advertise === undefined ? undefined : parseAddress(options.advertise, 'advertise');
  if (options.seeds !== undefined && !Array.isArray(options.seeds)) throw new InvalidOptionError('seeds', 'must be an array of "host:port", "dns:name[:port]" or "dns+srv:name"');
  const seeds = [...(options.seeds ?? [])];
  for (const s of seeds) parseSeed(s);
  const seedResolvers = options.seedResolvers === undefined ? undefined : [...options.seedResolvers];
  if (seedResolvers !== undefined && (!Array.isArray(seedResolvers) || !seedResolvers.every((r) => typeof r === 'string'))) {
    throw new InvalidOptionError('seedResolvers', 'must be an array of "host:port"');
  }
  // Checked here: the resolver is made only at the first name to look up, long after start().
  for (const r of seedResolvers ?? []) {
    if (ipFamily(r) === 0 && parseAddress(r, 'seedResolvers').family === 0) throw new InvalidOptionError('seedResolvers', `${JSON.stringify(r)} must be an IP address with an optional port, not a host name`);
  }
  const detection = options.detection;
  if (detection !== undefined && (detection === null || typeof detection !== 'object' || Object.keys(detection).some((k) => k !== 'pauseToleranceMs'))) {
    throw new InvalidOptionError('detection', 'must be { pauseToleranceMs }');
  }
  const pause = detection?.pauseToleranceMs;
  if (pause !== undefined && (typeof pause !== 'number' || !Number.isFinite(pause) || pause < 0 || pause > 600_000)) {
    throw new InvalidOptionError('detection.pauseToleranceMs', 'must be a number of ms in 0..600000');
  }
  const config = resolveConfig({
    ...(options.protocol ?? {}),
    ...(detection?.pauseToleranceMs !== undefined ? { pauseToleranceMs: detection.pauseToleranceMs } : {}),
    ...(options.profile !== undefined ? { profile: options.profile } : {}),
  });
  let keyring: Keyring | undefined;
  if (options.keyring instanceof Keyring) keyring = options.keyring;
  else if (options.keyring !== undefined) {
    if (!Array.isArray(options.keyring)) throw new InvalidOptionError('keyring', 'must be an array of 32-byte keys or a Keyring');
    keyring = new Keyring(options.keyring);
  }
  const meta = options.meta === undefined ? undefined : checkMeta(options.meta, 'meta');
  if (options.signal !== undefined && !(options.signal instanceof AbortSignal)) throw new InvalidOptionError('signal', 'must be an AbortSignal');
  for (const flag of ['includeSuspect', 'retryJoin'] as const) {
    if (options[flag] !== undefined && typeof options[flag] !== 'boolean') throw new InvalidOptionError(flag, 'must be a boolean');
  }
  if (options.pool !== undefined && (typeof options.pool !== 'string' || !/^[A-Za-z0-9_.-]{1,64}$/.test(options.pool))) {
    throw new InvalidOptionError('pool', 'must be 1 to 64 letters, digits, "_", "." or "-"');
  }
  return {
    name: options.name, bind, advertise, seeds, seedResolvers, config, keyring, meta, includeSuspect: options.includeSuspect ?? true, pool: options.pool ?? 'default',
    joinTimeoutMs: positive(options.joinTimeoutMs, 'joinTimeoutMs', 10_000),
    retryJoin: options.retryJoin ?? false,
    streamTimeoutMs: positive(options.streamTimeoutMs, 'streamTimeoutMs', 10_000),
    inboundStreamsMax: positive(options.inboundStreamsMax, 'inboundStreamsMax', 64),
    logger: atLevel(checkLogger(options.logger), options.logLevel ?? 'info'),
  };
}

/** `value` if it is a positive finite number, `fallback` if undefined; else an InvalidOptionError naming `option`. */
export function positive(value: number | undefined, option: string, fallback: number): number {
  if (value === undefined) return fallback;
  if (typeof value !== 'number' || !Number.isFinite(value) || value <= 0) throw new InvalidOptionError(option, 'must be a positive number');
  return value;
}

/** A wildcard bind is no address to give peers: use the first external IPv4 address, else loopback. */
export function defaultAdvertise(bound: Address): Address {
  if (bound.host !== '0.0.0.0' && bound.host !== '::') return bound;
  for (const list of Object.values(networkInterfaces())) {
    for (const ni of list ?? []) {
      if (!ni.internal && ni.family === 'IPv4') return { host: ni.address, port: bound.port, family: 4 };
    }
  }
  return { host: bound.family === 6 ? '::1' : '127.0.0.1', port: bound.port, family: bound.family === 6 ? 6 : 4 };
}
