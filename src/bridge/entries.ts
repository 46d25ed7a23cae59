/**
 * What a bridge writes to a store and how it reads what it finds there. Pure: no I/O.
 *
 * Paths are relative to the bridge's etcd prefix or ZooKeeper root:
 *   <service>/<id>@<node>@<pool>   an instance this member exports (segments URI-escaped)
 *   _members/<pool>/<node>         this member's gossip address (a seed for its pool)
 * The last segment carries node and pool because ids are unique per member only (two members
 * that both register `web` both default to the id `web`).
 *
 * Entries read back: our JSON, Apache Curator's service-discovery JSON, or a bare "host:port",
 * at <service>/<id> or at <service> (then the id is the service name). Names starting with "_"
 * are never services.
 */
import { parseAddress } from '../runtime/index.js';
import { HEALTH, type Health, toServiceRecord } from '../registry/record.js';
import type { ImportedInstance, Instance } from '../registry/registry.js';

export const MEMBERS_DIR = '_members';
/** Largest entry value read; a larger one is skipped as bad. */
export const ENTRY_BYTES_MAX = 64 * 1024;

/** Our JSON value for an exported instance. */
export interface ExportedEntry {
  name: string;
  id: string;
  address: string;
  port: number;
  tags: readonly string[];
  meta: Readonly<Record<string, string>>;
  health: Health;
  weight: number;
  node: string;
  pool: string;
}

/** A path segment: URI-escaped, with "@" escaped too (it separates id, node and pool). */
export function segment(text: string): string {
  return encodeURIComponent(text).replaceAll('@', '%40');
}

function unescape(text: string): string {
  try {
    return decodeURIComponent(text);
  } catch {
    return text;
  }
}

export function instancePath(i: Instance, pool: string): string {
  return `${segment(i.service)}/${segment(i.id)}@${segment(i.node)}@${segment(pool)}`;
}

export function memberPath(pool: string, node: string): string {
  return `${MEMBERS_DIR}/${segment(pool)}/${segment(node)}`;
}

export function exportedEntry(i: Instance, pool: string): ExportedEntry {
  return {
    name: i.service, id: i.id, address: i.address, port: i.port, tags: i.tags, meta: i.meta, health: i.health, weight: i.weight, node: i.node, pool,
  };
}

/**
 * Curator's ServiceInstance JSON, so Java services using curator-x-discovery see our instances.
 * Our fields ride in the payload (typed as a map for Jackson); `enabled` is false while critical.
 */
export function curatorEntry(e: ExportedEntry, registeredMs: number): Record<string, unknown> {
  const { name, id, address, port, ...payload } = e;
  return {
    name, id: `${id}@${e.node}@${e.pool}`, address, port, sslPort: null,
    payload: { '@class': 'java.util.LinkedHashMap', id, ...payload },
    registrationTimeUTC: registeredMs, serviceType: 'DYNAMIC', uriSpec: null, enabled: e.health !== 'critical',
  };
}

/** Where an entry came from, for its `node` when the entry names none ("etcd:services/web"). */
export interface EntryOrigin {
  store: 'etcd' | 'zookeeper';
  /** The full key or znode path. */
  key: string;
}

export type Parsed = { kind: 'instance'; instance: ImportedInstance } | { kind: 'skip' } | { kind: 'bad'; why: string };

/**
 * Reads the entry at `path` (relative to the prefix or root). `pool` is the reader's own: its
 * own entries are skipped (gossip already has them), as are members' seeds and deeper paths.
 */
export function parseEntry(path: string, value: Uint8Array | string, origin: EntryOrigin, pool: string): Parsed {
  const parts = path.split('/');
  if (parts.length === 0 || parts.length > 2 || parts[0] === '' || parts[0]?.startsWith('_') || parts[1] === '') return { kind: 'skip' };
  const size = typeof value === 'string' ? Buffer.byteLength(value) : value.length;
  if (size === 0) return { kind: 'skip' }; // a ZooKeeper service directory, or an empty key
  if (size > ENTRY_BYTES_MAX) return { kind: 'bad', why: `${size} bytes, at most ${ENTRY_BYTES_MAX}` };
  const text = (typeof value === 'string' ? value : Buffer.from(value.buffer, value.byteOffset, value.length).toString('utf8')).trim();
  const service = unescape(parts[0] as string);
  const id = parts.length === 2 ? unescape(parts[1] as string) : service;
  const node = `${origin.store}:${origin.key}`;
  try {
    if (!text.startsWith('{')) return instance(bare(text, service, id, node, origin));
    const json = JSON.parse(text) as unknown;
    if (json === null || typeof json !== 'object' || Array.isArray(json)) return { kind: 'bad', why: 'not a JSON object' };
    const o = json as Record<string, unknown>;
    const fields = typeof o['serviceType'] === 'string' || 'payload' in o ? curatorFields(o, id, node) : ourFields(o, id, node);
    if (fields.pool === pool) return { kind: 'skip' };
    return instance(checked(service, fields));
  } catch (e) {
    return { kind: 'bad', why: (e as Error).message };
  }
}

function instance(i: ImportedInstance): Parsed {
  return { kind: 'instance', instance: i };
}

type Fields = Omit<ImportedInstance, 'service'>;

function bare(text: string, service: string, id: string, node: string, origin: EntryOrigin): ImportedInstance {
  const a = parseAddress(text, `${origin.store} entry ${origin.key}`);
  return checked(service, { id, node, address: a.host, port: a.port, tags: [], meta: {}, weight: 1, health: 'passing', pool: '' });
}

function ourFields(o: Record<string, unknown>, id: string, node: string): Fields {
  return {
    id: typeof o['id'] === 'string' ? o['id'] : id,
    node: typeof o['node'] === 'string' && o['node'] !== '' ? o['node'] : node,
    address: o['address'] as string, port: o['port'] as number,
    tags: (o['tags'] ?? []) as string[], meta: (o['meta'] ?? {}) as Record<string, string>,
    weight: (o['weight'] ?? 1) as number,
    health: HEALTH.includes(o['health'] as Health) ? o['health'] as Health : 'passing',
    pool: typeof o['pool'] === 'string' ? o['pool'] : '',
  };
}

/** Curator JSON; our own fields come back from the payload when a grapevine member wrote it. */
function curatorFields(o: Record<string, unknown>, id: string, node: string): Fields {
  const p = o['payload'] !== null && typeof o['payload'] === 'object' && !Array.isArray(o['payload']) ? o['payload'] as Record<string, unknown> : {};
  const ours = typeof p['pool'] === 'string' ? ourFields(p, id, node) : undefined;
  return {
    ...(ours ?? { id: typeof o['id'] === 'string' ? o['id'] : id, node, tags: [], meta: {}, weight: 1, pool: '' }),
    address: o['address'] as string,
    port: (typeof o['port'] === 'number' ? o['port'] : o['sslPort']) as number,
    health: o['enabled'] === false ? 'critical' : ours?.health ?? 'passing',
  };
}

/** The registry's own validation (names, sizes, tags, meta), so an import obeys the same limits as a registration. */
function checked(service: string, f: Fields): ImportedInstance {
  if (typeof f.address !== 'string' || f.address === '') throw new Error('no address');
  if (f.port === 0) throw new Error('port 0');
  if (f.node.length > 1_024 || f.pool.length > 64) throw new Error('node or pool too long');
  const address = f.address.startsWith('[') && f.address.endsWith(']') ? f.address.slice(1, -1) : f.address;
  const r = toServiceRecord({ name: service, address, port: f.port, tags: f.tags, meta: f.meta, weight: f.weight, health: f.health }, f.id);
  return { id: r.id, service: r.name, node: f.node, address: r.address, port: r.port, tags: r.tags, meta: r.meta, weight: r.weight, health: r.health, pool: f.pool };
}
