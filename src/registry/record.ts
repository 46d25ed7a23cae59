/**
 * A node's record: its service instances and node metadata, as the bytes the core spreads for
 * it. The encoding is a positional MessagePack tuple, like the wire: [format, nodeMeta,
 * services], with metadata as flat [key, value, ...] lists (the bounded scanner refuses maps).
 * Records come from peers, so decoding scans every length first and validates every field.
 */
import { Packr } from 'msgpackr/pack';
import { Unpackr } from 'msgpackr/unpack';
import { InvalidOptionError, OversizedError } from '../core/errors.js';
import { scanValue } from '../core/msgpack-scan.js';
import { isPrintable, utf8Length } from '../core/wire.js';

export type Health = 'passing' | 'warning' | 'critical';
export const HEALTH: readonly Health[] = ['passing', 'warning', 'critical'];

/** One service instance as its owner describes it. */
export interface ServiceRecord {
  /** Unique on its node. */
  id: string;
  /** The service name that lookups match. */
  name: string;
  /** Where to connect; empty means the node's own address. */
  address: string;
  port: number;
  tags: readonly string[];
  meta: Readonly<Record<string, string>>;
  /** Relative share for weighted picks (default 1). */
  weight: number;
  health: Health;
  /** The checks behind `health`, as its owner runs them; empty when it has none. */
  checks: readonly CheckRecord[];
  /** Named other addresses of the instance (Consul's TaggedAddresses: "lan_ipv4", "wan", ...). */
  taggedAddresses: Readonly<Record<string, TaggedAddress>>;
  /** Share of weighted picks while warning (Consul's Weights.Warning, default 1). */
  warningWeight: number;
  /** Set for an instance of a node that runs no member (Consul's external services). */
  external?: ExternalNode | undefined;
}

/**
 * A node that runs no member (a database, a SaaS endpoint: Consul's external node). Its instances
 * are spread, and health-checked, by the member that registered them, and go with that member.
 */
export interface ExternalNode {
  /** The node's name; never a member's. */
  node: string;
  /** Its address (a host, no port). */
  address: string;
  meta: Readonly<Record<string, string>>;
}

/** One health check of an instance: what every member answers about it. */
export interface CheckRecord {
  /** Unique on its node. */
  id: string;
  name: string;
  /** "http", "tcp", "ttl" or "function". */
  type: string;
  status: Health;
  /** What the last run said (an HTTP check's status line and the start of the body), at most CHECK_OUTPUT_BYTES_MAX. */
  output: string;
  notes: string;
  /** Time between runs and a run's deadline, in ms (0 for TTL checks and checks that do not run). */
  intervalMs: number;
  timeoutMs: number;
}

export interface TaggedAddress {
  address: string;
  port: number;
}

/** Consul's default check_output_max_size. */
export const CHECK_OUTPUT_BYTES_MAX = 4_096;

export interface NodeRecord {
  meta: Readonly<Record<string, string>>;
  services: readonly ServiceRecord[];
  /** Checks of the node itself (maintenance, checks registered without a service): each counts against every instance of it. */
  checks: readonly CheckRecord[];
  /** Fingerprints of the keys the member's keyring holds, the primary first (empty without a keyring): what keyring listings count. */
  keys: readonly string[];
}

const FORMAT = 1;
/** Bounds on decoded records; owners are held to the same ones when they register. */
export const RECORD_LIMITS = {
  stringBytesMax: 1_024,
  servicesMax: 4_096,
  tagsMax: 64,
  metaEntriesMax: 64,
  checksMax: 16,
  taggedAddressesMax: 16,
  keysMax: 16,
} as const;

const packr = new Packr({ useRecords: false, variableMapSize: true });
const unpackr = new Unpackr({ useRecords: false });

/** A record to encode: node checks and keys may be left out (none). */
export function encodeRecord(record: Omit<NodeRecord, 'checks' | 'keys'> & { checks?: readonly CheckRecord[]; keys?: readonly string[] }): Uint8Array {
  const checks = record.checks ?? [];
  const keys = record.keys ?? [];
  // Added later, each left off while it and everything after it are empty.
  const later = [encodeChecks(checks), [...keys]];
  const used = keys.length > 0 ? 2 : checks.length > 0 ? 1 : 0;
  return packr.pack([FORMAT, flatten(record.meta), record.services.map(encodeService), ...later.slice(0, used)]);
}

/**
 * Checks as one flat list, each `[n, id, name, type, status, notes, intervalMs, timeoutMs, k,
 * k output chunks, ...]` with `n` the items after it (later versions may append; readers skip to
 * `n`). Flat lists of strings of at most 1 KiB, the output cut into chunks: so a member that
 * predates checks (its scanner allows four levels and 1 KiB strings) still reads the record.
 */
function encodeChecks(checks: readonly CheckRecord[]): unknown[] {
  return checks.flatMap((c) => {
    const chunks = utf8Chunks(c.output, RECORD_LIMITS.stringBytesMax);
    const items = [c.id, c.name, c.type, HEALTH.indexOf(c.status), c.notes, c.intervalMs, c.timeoutMs, chunks.length, ...chunks];
    return [items.length, ...items];
  });
}

/** `s` in pieces of at most `bytes` UTF-8 bytes, cut at character boundaries. */
function utf8Chunks(s: string, bytes: number): string[] {
  const out: string[] = [];
  for (let rest = s; rest !== ''; ) {
    const piece = truncateUtf8(rest, bytes);
    out.push(piece);
    rest = rest.slice(piece.length);
  }
  return out;
}

/**
 * [id, name, address, port, tags, meta, weight, health, checks, taggedAddresses, warningWeight,
 * external]: fields after the eighth were added later (members that predate them read the first
 * eight), and are left off while they hold their defaults. Every added field is a scalar or a
 * flat list of scalars, so older scanners accept it.
 */
function encodeService(s: ServiceRecord): unknown[] {
  const checks = encodeChecks(s.checks);
  const tagged = Object.entries(s.taggedAddresses).flatMap(([k, a]) => [k, a.address, a.port]);
  const external = s.external === undefined ? [] : [s.external.node, s.external.address, ...flatten(s.external.meta)];
  const used = external.length > 0 ? 4 : s.warningWeight !== 1 ? 3 : tagged.length > 0 ? 2 : checks.length > 0 ? 1 : 0;
  return [s.id, s.name, s.address, s.port, s.tags, flatten(s.meta), s.weight, HEALTH.indexOf(s.health), ...[checks, tagged, s.warningWeight, external].slice(0, used)];
}

export const EMPTY_NODE_RECORD: NodeRecord = Object.freeze({ meta: Object.freeze({}), services: Object.freeze([]), checks: Object.freeze([]), keys: Object.freeze([]) });

/** The record in `bytes`, or a description of what is wrong with it. Empty bytes are the empty record. */
export function decodeRecord(bytes: Uint8Array): NodeRecord | string {
  if (bytes.length === 0) return EMPTY_NODE_RECORD;
  // The same bounds as format 1 had from the start: what later versions add must fit them.
  const scanned = scanValue(bytes, 0, {
    depthMax: 4,
    arrayLengthMax: Math.max(RECORD_LIMITS.servicesMax, RECORD_LIMITS.metaEntriesMax * 2),
    stringBytesMax: RECORD_LIMITS.stringBytesMax,
    binaryBytesMax: 0,
  });
  if (!scanned.ok) return `record: ${scanned.reason} at ${scanned.offset}`;
  if (scanned.end !== bytes.length) return 'record: trailing bytes';
  let v: unknown;
  try {
    v = unpackr.unpack(bytes);
  } catch (e) {
    return `record: ${String(e)}`;
  }
  if (!Array.isArray(v) || v.length < 3 || v[0] !== FORMAT) return 'record: not a format-1 record';
  const meta = unflatten(v[1], 'node meta');
  if (typeof meta === 'string') return meta;
  if (!Array.isArray(v[2]) || v[2].length > RECORD_LIMITS.servicesMax) return 'record: services is not a list within the limit';
  const services: ServiceRecord[] = [];
  const ids = new Set<string>();
  for (const s of v[2] as unknown[]) {
    const service = decodeService(s);
    if (typeof service === 'string') return `record: service ${services.length}: ${service}`;
    if (ids.has(service.id)) return `record: duplicate service id ${service.id}`;
    ids.add(service.id);
    services.push(service);
  }
  const checks = decodeChecks(v[3] ?? []);
  if (typeof checks === 'string') return `record: node ${checks}`;
  const keys = (v[4] ?? []) as unknown;
  if (!Array.isArray(keys) || keys.length > RECORD_LIMITS.keysMax || !keys.every((k) => typeof k === 'string' && /^[0-9a-f]{16}$/.test(k))) return 'record: bad key fingerprints';
  return { meta, services, checks, keys: keys as string[] };
}

function decodeService(s: unknown): ServiceRecord | string {
  if (!Array.isArray(s) || s.length < 8) return 'not an 8-element list';
  const [id, name, address, port, tags, meta, weight, health, checks = [], tagged = [], warningWeight = 1, external = []] = s as unknown[];
  if (!isName(id)) return 'bad id';
  if (!isName(name)) return 'bad name';
  if (!isShort(address)) return 'bad address';
  if (!isPort(port)) return 'bad port';
  if (!Array.isArray(tags) || tags.length > RECORD_LIMITS.tagsMax || !tags.every(isShort)) return 'bad tags';
  const m = unflatten(meta, 'meta');
  if (typeof m === 'string') return m;
  if (!isWeight(weight) || !isWeight(warningWeight)) return 'bad weight';
  const h = HEALTH[health as number];
  if (h === undefined) return 'bad health';
  const c = decodeChecks(checks);
  if (typeof c === 'string') return c;
  const t = decodeTagged(tagged);
  if (typeof t === 'string') return t;
  const e = decodeExternal(external);
  if (typeof e === 'string') return e;
  return { id, name, address, port, tags: tags as string[], meta: m, weight, health: h, checks: c, taggedAddresses: t, warningWeight, external: e };
}

function decodeChecks(x: unknown): CheckRecord[] | string {
  if (!Array.isArray(x)) return 'checks is not a list';
  const out: CheckRecord[] = [];
  for (let at = 0; at < x.length; ) {
    const n: unknown = x[at];
    if (out.length >= RECORD_LIMITS.checksMax) return 'more checks than the limit';
    if (!Number.isInteger(n) || (n as number) < 8 || at + 1 + (n as number) > x.length) return 'a check is not a counted list';
    const [id, name, type, status, notes, intervalMs, timeoutMs, k] = x.slice(at + 1, at + 9) as unknown[];
    const chunks = x.slice(at + 9, at + 9 + (k as number)) as unknown[];
    const h = HEALTH[status as number];
    if (!isName(id) || !isShort(name) || !isShort(type) || h === undefined || !isShort(notes) || !isMs(intervalMs) || !isMs(timeoutMs)) return 'bad check';
    if (!Number.isInteger(k) || (k as number) < 0 || 8 + (k as number) > (n as number) || !chunks.every(isShort)) return 'bad check output';
    const output = (chunks as string[]).join('');
    if (utf8Length(output) > CHECK_OUTPUT_BYTES_MAX) return 'check output over the limit';
    out.push({ id, name, type, status: h, output, notes, intervalMs, timeoutMs });
    at += 1 + (n as number);
  }
  return out;
}

function decodeExternal(x: unknown): ExternalNode | undefined | string {
  if (!Array.isArray(x) || (x.length > 0 && x.length < 2)) return 'bad external node';
  if (x.length === 0) return undefined;
  const [node, address] = x as unknown[];
  if (!isName(node) || !isShort(address) || address === '') return 'bad external node';
  const m = unflatten(x.slice(2), 'external node meta');
  return typeof m === 'string' ? m : { node, address, meta: m };
}

function decodeTagged(x: unknown): Record<string, TaggedAddress> | string {
  if (!Array.isArray(x) || x.length % 3 !== 0 || x.length > RECORD_LIMITS.taggedAddressesMax * 3) return 'tagged addresses is not a list within the limit';
  const out = Object.create(null) as Record<string, TaggedAddress>;
  for (let i = 0; i < x.length; i += 3) {
    const [k, address, port] = [x[i], x[i + 1], x[i + 2]] as unknown[];
    if (!isName(k) || !isShort(address) || !isPort(port)) return 'bad tagged address';
    out[k] = { address, port };
  }
  return out;
}

function flatten(meta: Readonly<Record<string, string>>): string[] {
  const out: string[] = [];
  for (const [k, v] of Object.entries(meta)) out.push(k, v);
  return out;
}

function unflatten(x: unknown, what: string): Record<string, string> | string {
  if (!Array.isArray(x) || x.length % 2 !== 0 || x.length > RECORD_LIMITS.metaEntriesMax * 2) return `${what} is not a key/value list within the limit`;
  // A null prototype: keys from peers ("__proto__") stay plain data.
  const out = Object.create(null) as Record<string, string>;
  for (let i = 0; i < x.length; i += 2) {
    const k: unknown = x[i];
    const v: unknown = x[i + 1];
    if (!isShort(k) || !isShort(v)) return `${what} has a non-string or oversized entry`;
    out[k] = v;
  }
  return out;
}

function isName(x: unknown): x is string {
  return typeof x === 'string' && x.length > 0 && utf8Length(x) <= RECORD_LIMITS.stringBytesMax && isPrintable(x);
}
function isMs(x: unknown): x is number {
  return typeof x === 'number' && Number.isInteger(x) && x >= 0 && x <= 86_400_000;
}
function isShort(x: unknown): x is string {
  return typeof x === 'string' && utf8Length(x) <= RECORD_LIMITS.stringBytesMax;
}
function isPort(x: unknown): x is number {
  return typeof x === 'number' && Number.isInteger(x) && x >= 0 && x <= 65_535;
}
function isWeight(x: unknown): x is number {
  return typeof x === 'number' && Number.isFinite(x) && x >= 0 && x <= 1_000_000;
}

/** What a user passes to register(). */
export interface ServiceDefinition {
  name: string;
  /** Default: the name, or name-port when the node already has an instance of it. */
  id?: string;
  /** Default: this node's advertised address. */
  address?: string;
  port: number;
  tags?: readonly string[];
  meta?: Readonly<Record<string, string>>;
  /** Share of weighted picks, default 1. */
  weight?: number;
  /** Initial health (default passing; a health check overrides it). */
  health?: Health;
  /** Named other addresses ("lan_ipv4", "wan"), as Consul's TaggedAddresses. */
  taggedAddresses?: Readonly<Record<string, TaggedAddress>>;
  /** Share of weighted picks while warning, default 1 (Consul's Weights.Warning). */
  warningWeight?: number;
  /** An instance of a node that runs no member; this member spreads and checks it (see ExternalNode). */
  external?: { node: string; address: string; meta?: Readonly<Record<string, string>> };
}

/** Validates a definition into a record, naming the first bad field (as `service.<field>`). */
export function toServiceRecord(def: ServiceDefinition, id: string): ServiceRecord {
  if (def === null || typeof def !== 'object') throw new InvalidOptionError('service', 'must be an object');
  if (!isName(def.name)) throw new InvalidOptionError('service.name', `must be a non-empty printable string of at most ${RECORD_LIMITS.stringBytesMax} bytes`);
  if (!isName(id)) throw new InvalidOptionError('service.id', `must be a non-empty printable string of at most ${RECORD_LIMITS.stringBytesMax} bytes`);
  if (!isPort(def.port)) throw new InvalidOptionError('service.port', 'must be an integer in 0..65535');
  // An external instance carries its node's address too: members that predate external nodes read only this one.
  const address = def.address || (def.external?.address ?? '');
  if (typeof address !== 'string' || utf8Length(address) > RECORD_LIMITS.stringBytesMax) throw new InvalidOptionError('service.address', 'must be a string');
  const tags = def.tags ?? [];
  if (!Array.isArray(tags) || !tags.every((t) => typeof t === 'string')) throw new InvalidOptionError('service.tags', 'must be an array of strings');
  if (tags.length > RECORD_LIMITS.tagsMax) throw new InvalidOptionError('service.tags', `has ${tags.length} tags, at most ${RECORD_LIMITS.tagsMax}`);
  for (const t of tags) checkBytes(t, 'service.tags[]');
  const meta = checkMeta(def.meta ?? {}, 'service.meta');
  const weight = def.weight ?? 1;
  if (!isWeight(weight)) throw new InvalidOptionError('service.weight', 'must be a number in 0..1000000');
  const health = def.health ?? 'passing';
  if (!HEALTH.includes(health)) throw new InvalidOptionError('service.health', 'must be passing, warning or critical');
  const warningWeight = def.warningWeight ?? 1;
  if (!isWeight(warningWeight)) throw new InvalidOptionError('service.warningWeight', 'must be a number in 0..1000000');
  const taggedAddresses = checkTagged(def.taggedAddresses ?? {});
  return { id, name: def.name, address, port: def.port, tags: Object.freeze([...tags]), meta, weight, health, checks: [], taggedAddresses, warningWeight, external: checkExternal(def.external) };
}

/** The worst of `statuses`: any critical makes an instance critical, else any warning. */
export function worstHealth(statuses: readonly Health[]): Health {
  return statuses.includes('critical') ? 'critical' : statuses.includes('warning') ? 'warning' : 'passing';
}

/** `s` cut to at most `bytes` UTF-8 bytes, at a character boundary. */
export function truncateUtf8(s: string, bytes: number): string {
  if (utf8Length(s) <= bytes) return s;
  const { read } = new TextEncoder().encodeInto(s, new Uint8Array(bytes));
  return s.slice(0, read);
}

/** Validates an owner's checks for its record (ids unique, strings bounded, outputs cut to CHECK_OUTPUT_BYTES_MAX). */
export function toChecks(checks: readonly CheckRecord[]): readonly CheckRecord[] {
  if (!Array.isArray(checks) || checks.length > RECORD_LIMITS.checksMax) throw new InvalidOptionError('checks', `must be an array of at most ${RECORD_LIMITS.checksMax} checks`);
  const ids = new Set<string>();
  return Object.freeze(checks.map((c, n) => {
    if (!isName(c.id) || ids.has(c.id)) throw new InvalidOptionError(`checks[${n}].id`, 'must be a non-empty printable string, unique among the instance\'s checks');
    ids.add(c.id);
    for (const f of ['name', 'type', 'notes'] as const) checkBytes(c[f], `checks[${n}].${f}`);
    if (!HEALTH.includes(c.status)) throw new InvalidOptionError(`checks[${n}].status`, 'must be passing, warning or critical');
    if (typeof c.output !== 'string') throw new InvalidOptionError(`checks[${n}].output`, 'must be a string');
    if (!isMs(c.intervalMs) || !isMs(c.timeoutMs)) throw new InvalidOptionError(`checks[${n}].intervalMs`, 'intervalMs and timeoutMs must be integers in 0..86400000');
    return Object.freeze({
      id: c.id, name: c.name, type: c.type, status: c.status, output: truncateUtf8(c.output, CHECK_OUTPUT_BYTES_MAX), notes: c.notes, intervalMs: c.intervalMs, timeoutMs: c.timeoutMs,
    });
  }));
}

function checkExternal(e: ServiceDefinition['external']): ExternalNode | undefined {
  if (e === undefined) return undefined;
  if (e === null || typeof e !== 'object') throw new InvalidOptionError('service.external', 'must be { node, address, meta? }');
  if (!isName(e.node)) throw new InvalidOptionError('service.external.node', `must be a non-empty printable string of at most ${RECORD_LIMITS.stringBytesMax} bytes`);
  if (!isShort(e.address) || e.address === '') throw new InvalidOptionError('service.external.address', 'must be a non-empty string');
  return Object.freeze({ node: e.node, address: e.address, meta: checkMeta(e.meta ?? {}, 'service.external.meta') });
}

function checkTagged(tagged: Readonly<Record<string, TaggedAddress>>): Readonly<Record<string, TaggedAddress>> {
  const option = 'service.taggedAddresses';
  if (tagged === null || typeof tagged !== 'object' || Array.isArray(tagged)) throw new InvalidOptionError(option, 'must be an object of { address, port }');
  const entries = Object.entries(tagged);
  if (entries.length > RECORD_LIMITS.taggedAddressesMax) throw new InvalidOptionError(option, `has ${entries.length} entries, at most ${RECORD_LIMITS.taggedAddressesMax}`);
  for (const [k, a] of entries) {
    if (!isName(k)) throw new InvalidOptionError(option, `key ${JSON.stringify(String(k).slice(0, 32))} must be a non-empty printable string`);
    if (a === null || typeof a !== 'object' || !isShort(a.address) || !isPort(a.port)) throw new InvalidOptionError(`${option}.${k}`, 'must be { address: string, port: 0..65535 }');
  }
  return Object.freeze(Object.fromEntries(entries.map(([k, a]) => [k, Object.freeze({ address: a.address, port: a.port })])));
}

export function checkMeta(meta: Readonly<Record<string, string>>, option: string): Readonly<Record<string, string>> {
  if (meta === null || typeof meta !== 'object' || Array.isArray(meta)) throw new InvalidOptionError(option, 'must be an object of strings');
  const entries = Object.entries(meta);
  if (entries.length > RECORD_LIMITS.metaEntriesMax) throw new InvalidOptionError(option, `has ${entries.length} entries, at most ${RECORD_LIMITS.metaEntriesMax}`);
  for (const [k, v] of entries) {
    if (typeof v !== 'string') throw new InvalidOptionError(`${option}.${k}`, 'must be a string');
    checkBytes(k, `${option} key ${JSON.stringify(k.slice(0, 32))}`);
    checkBytes(v, `${option}.${k}`);
  }
  return Object.freeze({ ...meta });
}

/** A string within RECORD_LIMITS.stringBytesMax UTF-8 bytes, else an OversizedError naming `what`. */
function checkBytes(s: string, what: string): void {
  const size = utf8Length(s);
  if (size > RECORD_LIMITS.stringBytesMax) throw new OversizedError(what, size, RECORD_LIMITS.stringBytesMax);
}
