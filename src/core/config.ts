import { InvalidOptionError } from './errors.js';

/**
 * Protocol parameters. One typed object plus named presets (`lan`, `wan`, `local`); units go
 * last in names. Timing defaults are memberlist's (hashicorp/memberlist config.go,
 * DefaultLANConfig / DefaultWANConfig / DefaultLocalConfig); see PROFILES for each reason.
 */
export interface Config {
  /** Time between probes of the next member in the shuffled round-robin order. */
  probeIntervalMs: number;
  /** How long to wait for a direct ack before asking others to probe indirectly. */
  probeTimeoutMs: number;
  /** Members asked to ping-req a target that missed its direct ack (SWIM's k). */
  indirectChecks: number;
  /** Suspicion timeout minimum = suspicionMult x max(1, log10(n)) x probeIntervalMs (suspicion.ts), when pauseToleranceMs is 0. */
  suspicionMult: number;
  /**
   * The longest stall (GC pause, CPU starvation, SIGSTOP) a live member must survive without
   * being declared dead. When set (> 0), the suspicion minimum follows from it instead of the
   * suspicionMult formula, and a suspicion that runs out is first put to the suspect directly,
   * which answers its accuser if it runs (suspicion.ts), and a few members that hear of a
   * suspicion probe the suspect next (transitions.ts): a crash is then detected in about one
   * probe round plus this. 0: memberlist's detector (the suspicionMult formula, neither of those).
   */
  pauseToleranceMs: number;
  /** Suspicion timeout maximum = suspicionMaxTimeoutMult x the minimum (Lifeguard). */
  suspicionMaxTimeoutMult: number;
  /** Time between gossip rounds that piggyback queued broadcasts to a few random members. */
  gossipIntervalMs: number;
  /** Members sent to in each gossip round (fan-out). */
  gossipNodes: number;
  /** Each broadcast is sent retransmitMult x ceil(log10(n + 1)) times. */
  retransmitMult: number;
  /** Base time between full-state push-pull exchanges; grows with cluster size above 32. */
  pushPullIntervalMs: number;
  /** Largest UDP payload the core builds, header included (compound packets fill up to it). */
  udpPayloadBytesMax: number;
  /** Lifeguard local health: probe interval and timeouts scale by (score + 1), score < max. */
  awarenessMax: number;
  /** Dead members still receive gossip for this long, so a wrongly declared one can refute. */
  gossipToTheDeadMs: number;
  /** Dead and left members are kept as tombstones this long, so stale gossip cannot revive them. */
  tombstoneReapMs: number;
  /**
   * How often a member sends a join request to each of its seeds that it does not hold alive
   * (down, dead, reaped or never reached), jittered by ±50%; 0 turns it off. This is what heals
   * a cluster whose seed was down past the tombstone time, or a member that started alone.
   */
  rejoinIntervalMs: number;
  /**
   * Lifeguard on or off: local health awareness (including the wait before accusing anyone
   * after a stalled event loop), confirmation-shrunk suspicion timeouts and the buddy system.
   * Off gives plain SWIM with a fixed suspicion timeout (for comparisons).
   */
  lifeguard: boolean;
  /** Largest member record (the registry's services and node metadata), in bytes. */
  recordBytesMax: number;
  /** Records up to this size ride inside gossip; larger ones are announced by digest and pulled over a stream. */
  recordInlineBytesMax: number;
  /** Longest member name, in UTF-8 bytes. */
  nameBytesMax: number;
  /** Largest frame accepted or produced on the stream (TCP) path, e.g. a push-pull state. */
  streamBytesMax: number;
  /** Most members in the table and in one push-pull state; gossip naming more is dropped. */
  membersMax: number;
  /** Events kept for `pollEvent()` before the oldest are dropped (and counted). */
  eventQueueMax: number;
}

export type ProfileName = 'lan' | 'wan' | 'local';

const LAN: Config = {
  probeIntervalMs: 1_000, // memberlist LAN: a failure is noticed in ~1.58 probe periods (SWIM)
  probeTimeoutMs: 500, // memberlist LAN: ~99.9th percentile RTT on a LAN, with headroom
  indirectChecks: 3, // memberlist: 3 independent paths rule out a single bad link
  suspicionMult: 4, // memberlist LAN: 8 s at 100 members, 12 s at 1,000 (before confirmations); used when pauseToleranceMs is 0
  pauseToleranceMs: 3_000, // ours: survives 3 s stalls under 10% loss (bench/chaos.ts), detects in about one probe round more
  suspicionMaxTimeoutMult: 6, // memberlist: Lifeguard starts at 6x the minimum, shrinks on confirmations
  gossipIntervalMs: 200, // memberlist LAN
  gossipNodes: 3, // memberlist LAN
  retransmitMult: 4, // memberlist LAN: 12 sends per broadcast at 100 members
  pushPullIntervalMs: 30_000, // memberlist LAN
  udpPayloadBytesMax: 1_400, // memberlist UDPBufferSize: below a 1,500-byte Ethernet MTU after IP/UDP headers
  awarenessMax: 8, // memberlist: a sick node slows to at most 8x its probe interval
  gossipToTheDeadMs: 30_000, // memberlist LAN
  tombstoneReapMs: 300_000, // ours: outlives stale gossip (seconds) and several push-pull rounds (30-90 s)
  rejoinIntervalMs: 15_000, // ours: a restarted seed is found within 15 s on average, 22.5 s at most
  lifeguard: true,
  recordBytesMax: 65_536, // ours: many services with rich metadata; memberlist caps node meta at 512 bytes
  recordInlineBytesMax: 512, // memberlist's MetaMaxSize: leaves most of a 1,400-byte packet for other gossip
  nameBytesMax: 128, // ours: DNS-label-like names fit easily; bounds every decoded name
  streamBytesMax: 16 * 1024 * 1024, // ours: a 10,000-member push-pull with full metadata is ~6 MiB
  membersMax: 100_000, // ours: 10x the largest cluster we simulate
  eventQueueMax: 10_000, // ours: a driver drains after every input; this only guards a stuck one
};

/** Named presets; every field can be overridden. */
export const PROFILES: Readonly<Record<ProfileName, Readonly<Config>>> = {
  lan: LAN,
  wan: {
    ...LAN,
    probeIntervalMs: 5_000, // memberlist WAN: higher, more variable latency
    probeTimeoutMs: 3_000, // memberlist WAN
    suspicionMult: 6, // memberlist WAN: more patience before declaring a remote node dead
    pauseToleranceMs: 0, // memberlist's WAN formula: nothing here measures stalls across a WAN
    gossipIntervalMs: 500, // memberlist WAN
    gossipNodes: 4, // memberlist WAN
    pushPullIntervalMs: 60_000, // memberlist WAN
    gossipToTheDeadMs: 60_000, // memberlist WAN
    tombstoneReapMs: 600_000, // ours: twice LAN, as push-pull is twice as slow
    rejoinIntervalMs: 30_000, // ours: twice LAN
  },
  local: {
    ...LAN,
    probeTimeoutMs: 200, // memberlist Local: loopback or one rack
    indirectChecks: 1, // memberlist Local
    suspicionMult: 3, // memberlist Local
    gossipIntervalMs: 100, // memberlist Local
    retransmitMult: 2, // memberlist Local
    pushPullIntervalMs: 15_000, // memberlist Local
    gossipToTheDeadMs: 15_000, // memberlist Local
    tombstoneReapMs: 120_000, // ours: push-pull is twice as frequent as LAN
    rejoinIntervalMs: 10_000, // ours
  },
};

/** Old names of parameters, still accepted: each maps to its new name. */
export interface DeprecatedConfigOptions {
  /** @deprecated Use `recordBytesMax` (the name said "meta" for what is the member's whole record). */
  metaBytesMax?: number;
  /** @deprecated Use `recordInlineBytesMax`. */
  metaInlineBytesMax?: number;
}

const RENAMED: Readonly<Record<keyof DeprecatedConfigOptions, keyof Config>> = {
  metaBytesMax: 'recordBytesMax',
  metaInlineBytesMax: 'recordInlineBytesMax',
};

export type ConfigOptions = Partial<Config> & DeprecatedConfigOptions & { profile?: ProfileName };

interface Bound {
  min: number;
  max: number;
  integer: boolean;
}

const BOUNDS: Record<Exclude<keyof Config, 'lifeguard'>, Bound> = {
  probeIntervalMs: { min: 1, max: 3_600_000, integer: false },
  probeTimeoutMs: { min: 1, max: 3_600_000, integer: false },
  indirectChecks: { min: 0, max: 16, integer: true },
  suspicionMult: { min: 1, max: 100, integer: true },
  pauseToleranceMs: { min: 0, max: 600_000, integer: false },
  suspicionMaxTimeoutMult: { min: 1, max: 100, integer: true },
  gossipIntervalMs: { min: 1, max: 3_600_000, integer: false },
  gossipNodes: { min: 0, max: 64, integer: true },
  retransmitMult: { min: 1, max: 100, integer: true },
  pushPullIntervalMs: { min: 0, max: 86_400_000, integer: false },
  udpPayloadBytesMax: { min: 512, max: 65_507, integer: true },
  awarenessMax: { min: 1, max: 64, integer: true },
  gossipToTheDeadMs: { min: 0, max: 86_400_000, integer: false },
  tombstoneReapMs: { min: 0, max: 7 * 86_400_000, integer: false },
  rejoinIntervalMs: { min: 0, max: 86_400_000, integer: false },
  recordBytesMax: { min: 0, max: 4 * 1024 * 1024, integer: true },
  recordInlineBytesMax: { min: 0, max: 4_096, integer: true },
  nameBytesMax: { min: 1, max: 1_024, integer: true },
  streamBytesMax: { min: 1_024, max: 1024 * 1024 * 1024, integer: true },
  membersMax: { min: 1, max: 10_000_000, integer: true },
  eventQueueMax: { min: 1, max: 10_000_000, integer: true },
};

/**
 * Builds a full config from a profile (default `lan`) and overrides, validating every field.
 * Throws InvalidOptionError naming the first bad option.
 */
export function resolveConfig(options: ConfigOptions = {}): Config {
  const profileName = options.profile ?? 'lan';
  const profile = PROFILES[profileName];
  if (profile === undefined) {
    throw new InvalidOptionError('profile', `unknown profile ${JSON.stringify(profileName)}; expected lan, wan or local`);
  }
  const config: Config = { ...profile };
  for (const [given, value] of Object.entries(options)) {
    if (given === 'profile' || value === undefined) continue;
    // The new name wins when both are given; errors name what the caller wrote.
    const key = Object.hasOwn(RENAMED, given) ? RENAMED[given as keyof DeprecatedConfigOptions] : given;
    if (key !== given && (options as Record<string, unknown>)[key] !== undefined) continue;
    if (key === 'lifeguard') {
      if (typeof value !== 'boolean') throw new InvalidOptionError(given, 'must be a boolean');
      config.lifeguard = value;
      continue;
    }
    if (!Object.hasOwn(BOUNDS, key)) throw new InvalidOptionError(given, 'unknown option');
    const bound = BOUNDS[key as keyof typeof BOUNDS];
    if (typeof value !== 'number' || !Number.isFinite(value)) {
      throw new InvalidOptionError(given, `must be a finite number, got ${String(value)}`);
    }
    if (bound.integer && !Number.isInteger(value)) throw new InvalidOptionError(given, `must be an integer, got ${value}`);
    if (value < bound.min || value > bound.max) {
      throw new InvalidOptionError(given, `must be between ${bound.min} and ${bound.max}, got ${value}`);
    }
    (config as unknown as Record<string, number>)[key] = value;
  }
  if (config.recordInlineBytesMax > config.udpPayloadBytesMax / 2) {
    throw new InvalidOptionError('recordInlineBytesMax', `must leave half of udpPayloadBytesMax (${config.udpPayloadBytesMax}) for other gossip`);
  }
  if (config.recordBytesMax + 1_024 > config.streamBytesMax) {
    throw new InvalidOptionError('recordBytesMax', `must fit in a stream frame (streamBytesMax ${config.streamBytesMax})`);
  }
  if (config.probeTimeoutMs > config.probeIntervalMs) {
    throw new InvalidOptionError('probeTimeoutMs', `must not exceed probeIntervalMs (${config.probeIntervalMs})`);
  }
  return config;
}

/** Sends per broadcast (memberlist util.go retransmitLimit). */
export function retransmitLimit(config: Config, members: number): number {
  return config.retransmitMult * Math.ceil(Math.log10(members + 1));
}

/** Push-pull interval grown with cluster size (memberlist util.go pushPullScale). */
export function pushPullIntervalMs(config: Config, members: number): number {
  if (members <= 32) return config.pushPullIntervalMs;
  const multiplier = Math.ceil(Math.log2(members) - Math.log2(32)) + 1;
  return config.pushPullIntervalMs * multiplier;
}
