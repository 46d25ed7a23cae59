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
}

export interface NodeRecord {
  meta: Readonly<Record<string, string>>;
  services: readonly ServiceRecord[];
}

const FORMAT = 1;
/** Bounds on decoded records; owners are held to the same ones when they register. */
export const RECORD_LIMITS = {
  stringBytesMax: 1_024,
  servicesMax: 4_096,
  tagsMax: 64,
  metaEntriesMax: 64,
} as const;

const packr = new Packr({ useRecords: false, variableMapSize: true });
const unpackr = new Unpackr({ useRecords: false });

export function encodeRecord(record: NodeRecord): Uint8Array {
  return packr.pack([
    FORMAT,
    flatten(record.meta),
    record.services.map((s) => [s.id, s.name, s.address, s.port, s.tags, flatten(s.meta), s.weight, HEALTH.indexOf(s.health)]),
  ]);
}

export const EMPTY_NODE_RECORD: NodeRecord = Object.freeze({ meta: Object.freeze({}), services: Object.freeze([]) });

/** The record in `bytes`, or a description of what is wrong with it. Empty bytes are the empty record. */
export function decodeRecord(bytes: Uint8Array): NodeRecord | string {
  if (bytes.length === 0) return EMPTY_NODE_RECORD;
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
  return { meta, services };
}

function decodeService(s: unknown): ServiceRecord | string {
  if (!Array.isArray(s) || s.length < 8) return 'not an 8-element list';
  const [id, name, address, port, tags, meta, weight, health] = s as unknown[];
  if (!isName(id)) return 'bad id';
  if (!isName(name)) return 'bad name';
  if (typeof address !== 'string') return 'bad address';
  if (!isPort(port)) return 'bad port';
  if (!Array.isArray(tags) || tags.length > RECORD_LIMITS.tagsMax || !tags.every((t) => typeof t === 'string')) return 'bad tags';
  const m = unflatten(meta, 'meta');
  if (typeof m === 'string') return m;
  if (!isWeight(weight)) return 'bad weight';
  const h = HEALTH[health as number];
  if (h === undefined) return 'bad health';
  return { id, name, address, port, tags: tags as string[], meta: m, weight, health: h };
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
    if (typeof k !== 'string' || typeof v !== 'string') return `${what} has a non-string entry`;
    out[k] = v;
  }
  return out;
}

function isName(x: unknown): x is string {
  return typeof x === 'string' && x.length > 0 && utf8Length(x) <= RECORD_LIMITS.stringBytesMax && isPrintable(x);
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
}

/** Validates a definition into a record, naming the first bad field (as `service.<field>`). */
export function toServiceRecord(def: ServiceDefinition, id: string): ServiceRecord {
  if (def === null || typeof def !== 'object') throw new InvalidOptionError('service', 'must be an object');
  if (!isName(def.name)) throw new InvalidOptionError('service.name', `must be a non-empty printable string of at most ${RECORD_LIMITS.stringBytesMax} bytes`);
  if (!isName(id)) throw new InvalidOptionError('service.id', `must be a non-empty printable string of at most ${RECORD_LIMITS.stringBytesMax} bytes`);
  if (!isPort(def.port)) throw new InvalidOptionError('service.port', 'must be an integer in 0..65535');
  const address = def.address ?? '';
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
  return { id, name: def.name, address, port: def.port, tags: Object.freeze([...tags]), meta, weight, health };
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
