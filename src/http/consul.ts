/**
 * Grapevine's model in Consul's JSON: nodes, catalog entries, health entries and checks, with
 * Consul's field names, and Consul's registration body turned into a Registration. Consul
 * clients (the `consul` npm package, python-consul, consul-template) read these shapes.
 *
 * What differs, by design: there is one datacenter ("dc1") and no servers; a node's ID is
 * derived from its name; every live member has a passing `serfHealth` check (a suspect one too,
 * as in Consul, whose catalog learns only of failures); a member's instances carry one check,
 * `service:<id>`, whose status is the instance's health as gossiped. Dead members are gone from
 * the catalog at once rather than held critical until reaped.
 */
import { createHash } from 'node:crypto';
import type { Instance, Member } from '../registry/index.js';
import { type CheckDefinition, type Grapevine, hostOf, InvalidOptionError, type Registration } from '../runtime/index.js';

export const DATACENTER = 'dc1';

/** A stable UUID-shaped node ID derived from the member's name (Consul clients expect one). */
export function nodeId(name: string): string {
  const h = createHash('sha256').update(name).digest('hex');
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20, 32)}`;
}

export function portOf(addr: string): number {
  return Number(addr.slice(addr.lastIndexOf(':') + 1));
}

export function consulNode(m: Pick<Member, 'name' | 'addr' | 'meta'>, index: number): Record<string, unknown> {
  const address = hostOf(m.addr);
  return {
    ID: nodeId(m.name), Node: m.name, Address: address, Datacenter: DATACENTER,
    TaggedAddresses: { lan: address, wan: address }, Meta: m.meta, CreateIndex: index, ModifyIndex: index,
  };
}

function weights(i: Instance): { Passing: number; Warning: number } {
  return { Passing: i.weight, Warning: 1 };
}

/** An instance as /v1/agent/services lists it. */
export function agentService(i: Instance): Record<string, unknown> {
  return {
    ID: i.id, Service: i.service, Tags: i.tags, Meta: i.meta, Port: i.port, Address: i.address,
    TaggedAddresses: {}, Weights: weights(i), EnableTagOverride: false, Datacenter: DATACENTER,
  };
}

/** An instance as /v1/catalog/service/:name lists it. */
export function catalogService(i: Instance, node: Pick<Member, 'name' | 'addr' | 'meta'>, index: number): Record<string, unknown> {
  const address = hostOf(node.addr);
  return {
    ID: nodeId(node.name), Node: node.name, Address: address, Datacenter: DATACENTER, TaggedAddresses: { lan: address, wan: address },
    NodeMeta: node.meta, ServiceKind: '', ServiceID: i.id, ServiceName: i.service, ServiceTags: i.tags, ServiceAddress: i.address,
    ServiceWeights: weights(i), ServiceMeta: i.meta, ServicePort: i.port, ServiceEnableTagOverride: false, ServiceProxy: {}, ServiceConnect: {},
    CreateIndex: index, ModifyIndex: index,
  };
}

/** What this member knows of a check beyond its status: for checks registered through this API. */
export interface CheckInfo {
  id: string;
  name: string;
  type: string;
  notes: string;
  output: string;
  interval: string;
  timeout: string;
}

export function serfHealth(node: string, index: number): Record<string, unknown> {
  return check(node, {
    id: 'serfHealth', name: 'Serf Health Status', type: '', notes: '', output: 'Agent alive and reachable', interval: '', timeout: '',
  }, 'passing', undefined, index);
}

export function serviceCheck(i: Instance, index: number, info?: CheckInfo, status: string = i.health): Record<string, unknown> {
  return check(i.node, info ?? {
    id: `service:${i.id}`, name: `Service '${i.service}' check`, type: '', notes: '', output: '', interval: '', timeout: '',
  }, status, i, index);
}

function check(node: string, c: CheckInfo, status: string, i: Instance | undefined, index: number): Record<string, unknown> {
  return {
    Node: node, CheckID: c.id, Name: c.name, Status: status, Notes: c.notes, Output: c.output,
    ServiceID: i?.id ?? '', ServiceName: i?.service ?? '', ServiceTags: i?.tags ?? [], Type: c.type,
    Interval: c.interval, Timeout: c.timeout, ExposedPort: 0, Definition: {}, CreateIndex: index, ModifyIndex: index,
  };
}

/** Serf's member status codes, as /v1/agent/members reports them. */
const SERF_STATUS: Record<string, number> = { alive: 1, suspect: 1, left: 3, dead: 4 };

export function agentMember(m: Member): Record<string, unknown> {
  return {
    Name: m.name, Addr: hostOf(m.addr), Port: portOf(m.addr), Tags: { dc: DATACENTER, role: 'node', ...m.meta },
    Status: SERF_STATUS[m.state] ?? 0, ProtocolMin: 1, ProtocolMax: 5, ProtocolCur: 2, DelegateMin: 2, DelegateMax: 5, DelegateCur: 4,
  };
}

// ---------------------------------------------------------------- registration bodies

/** A Consul registration turned into ours, with what Consul-only fields we keep for the agent endpoints. */
export interface ParsedRegistration {
  registration: Registration;
  checks: CheckInfo[];
  /** Per check: deregister the service after it has been critical this long (0: never). */
  deregisterAfterMs: number[];
}

const MAX_DURATION_MS = 24 * 3600 * 1000;

/** Go's duration strings ("10s", "1m30s", "500ms", "1h"), or a number of nanoseconds as Consul also accepts. */
export function parseDuration(value: unknown, field: string): number {
  if (typeof value === 'number' && Number.isFinite(value) && value >= 0) return value / 1e6;
  if (typeof value !== 'string' || !/^(\d+(\.\d+)?(ns|us|µs|ms|s|m|h))+$/.test(value)) {
    throw new InvalidOptionError(field, `not a duration such as "10s" or "1m30s": ${JSON.stringify(value)}`);
  }
  const unit: Record<string, number> = { ns: 1e-6, us: 1e-3, µs: 1e-3, ms: 1, s: 1_000, m: 60_000, h: 3_600_000 };
  let ms = 0;
  for (const [, n, , u] of value.matchAll(/(\d+(\.\d+)?)(ns|us|µs|ms|s|m|h)/g)) ms += Number(n) * (unit[u as string] as number);
  if (ms > MAX_DURATION_MS) throw new InvalidOptionError(field, `longer than 24h: ${value}`);
  return ms;
}

function field<T>(body: Record<string, unknown>, name: string, test: (v: unknown) => boolean, what: string): T | undefined {
  const v = body[name];
  if (v === undefined || v === null) return undefined;
  if (!test(v)) throw new InvalidOptionError(name, `must be ${what}`);
  return v as T;
}

const isString = (v: unknown): boolean => typeof v === 'string';
const isObject = (v: unknown): boolean => typeof v === 'object' && v !== null && !Array.isArray(v);

/** Shortest check interval we run (ours and Consul's minimum); shorter ones are raised to it, as Consul does. */
const INTERVAL_MIN_MS = 1_000;

/** One Consul check definition → ours, its agent-side info and its deregister-after time. */
function parseCheck(c: Record<string, unknown>, serviceId: string, n: number, count: number, warn: (m: string) => void): { def: CheckDefinition; info: CheckInfo; deregisterAfterMs: number } {
  const id = field<string>(c, 'CheckID', isString, 'a string') ?? field<string>(c, 'ID', isString, 'a string')
    ?? (count === 1 ? `service:${serviceId}` : `service:${serviceId}:${n + 1}`);
  const name = field<string>(c, 'Name', isString, 'a string') ?? `Service '${serviceId}' check`;
  const notes = field<string>(c, 'Notes', isString, 'a string') ?? '';
  const interval = field<string>(c, 'Interval', (v) => isString(v) || typeof v === 'number', 'a duration');
  const timeout = field<string>(c, 'Timeout', (v) => isString(v) || typeof v === 'number', 'a duration');
  const dereg = c.DeregisterCriticalServiceAfter;
  const deregisterAfterMs = dereg === undefined || dereg === null || dereg === '' ? 0 : parseDuration(dereg, 'DeregisterCriticalServiceAfter');
  const rise = Math.max(1, Number(c.SuccessBeforePassing ?? 0) || 0);
  const fall = Math.max(1, Number(c.FailuresBeforeCritical ?? 0) || 0);
  const timing = (): { intervalMs: number; timeoutMs?: number; rise: number; fall: number } => {
    if (interval === undefined) throw new InvalidOptionError('Interval', 'required for HTTP and TCP checks');
    let intervalMs = parseDuration(interval, 'Interval');
    if (intervalMs < INTERVAL_MIN_MS) {
      warn(`check ${id}: interval ${String(interval)} is below the 1s minimum; using 1s`);
      intervalMs = INTERVAL_MIN_MS;
    }
    return { intervalMs, ...(timeout !== undefined ? { timeoutMs: Math.max(1, parseDuration(timeout, 'Timeout')) } : {}), rise, fall };
  };
  const info = (type: string): CheckInfo => ({ id, name, type, notes, output: '', interval: interval === undefined ? '' : String(interval), timeout: timeout === undefined ? '' : String(timeout) });
  const http = field<string>(c, 'HTTP', isString, 'a URL');
  if (http !== undefined) {
    const header = field<Record<string, unknown>>(c, 'Header', isObject, 'an object of string arrays');
    const headers = header === undefined ? undefined : Object.fromEntries(Object.entries(header).map(([k, v]) => [k, Array.isArray(v) ? v.map(String).join(', ') : String(v)]));
    return { def: { http, ...timing(), ...(headers !== undefined ? { headers } : {}) }, info: info('http'), deregisterAfterMs };
  }
  const tcp = field<string>(c, 'TCP', isString, 'a "host:port" string');
  if (tcp !== undefined) return { def: { tcp, ...timing() }, info: info('tcp'), deregisterAfterMs };
  const ttl = c.TTL;
  if (ttl !== undefined && ttl !== null && ttl !== '') {
    let ttlMs = parseDuration(ttl, 'TTL');
    if (ttlMs < INTERVAL_MIN_MS) {
      warn(`check ${id}: TTL ${String(ttl)} is below the 1s minimum; using 1s`);
      ttlMs = INTERVAL_MIN_MS;
    }
    return { def: { ttlMs }, info: info('ttl'), deregisterAfterMs };
  }
  const kinds = ['Args', 'ScriptArgs', 'GRPC', 'DockerContainerID', 'H2PING', 'AliasService', 'UDP', 'OSService'].filter((k) => c[k] !== undefined);
  throw new InvalidOptionError('Check', kinds.length > 0 ? `${kinds.join(', ')} checks are not supported; use HTTP, TCP or TTL` : 'needs one of HTTP, TCP or TTL');
}

/** Consul's PUT /v1/agent/service/register body → a Registration (field errors name Consul's field). */
export function parseRegistration(body: unknown, warn: (m: string) => void): ParsedRegistration {
  if (!isObject(body)) throw new InvalidOptionError('body', 'must be a JSON object');
  const b = body as Record<string, unknown>;
  const name = field<string>(b, 'Name', isString, 'a string');
  if (name === undefined || name === '') throw new InvalidOptionError('Name', 'missing service name');
  const id = field<string>(b, 'ID', isString, 'a string') || name;
  const address = field<string>(b, 'Address', isString, 'a string');
  const port = field<number>(b, 'Port', (v) => Number.isInteger(v), 'an integer') ?? 0;
  const tags = field<string[]>(b, 'Tags', (v) => Array.isArray(v) && v.every(isString), 'an array of strings');
  const meta = field<Record<string, string>>(b, 'Meta', (v) => isObject(v) && Object.values(v as object).every(isString), 'an object of strings');
  const w = field<Record<string, unknown>>(b, 'Weights', isObject, 'an object');
  const weight = w?.Passing === undefined ? undefined : Number(w.Passing);
  if (weight !== undefined && (!Number.isInteger(weight) || weight < 1)) throw new InvalidOptionError('Weights.Passing', 'must be an integer of at least 1');
  const one = field<Record<string, unknown>>(b, 'Check', isObject, 'an object');
  const many = field<Record<string, unknown>[]>(b, 'Checks', (v) => Array.isArray(v) && v.every(isObject), 'an array of objects') ?? [];
  // Consul accepts an empty Check object as "no check".
  const defs = [...(one !== undefined && Object.keys(one).length > 0 ? [one] : []), ...many];
  const parsed = defs.map((c, n) => parseCheck(c, id, n, defs.length, warn));
  const registration: Registration = {
    name, id, port,
    ...(address !== undefined && address !== '' ? { address } : {}),
    ...(tags !== undefined ? { tags } : {}),
    ...(meta !== undefined ? { meta } : {}),
    ...(weight !== undefined ? { weight } : {}),
    ...(parsed.length > 0 ? { checks: parsed.map((p) => p.def) } : {}),
  };
  return { registration, checks: parsed.map((p) => p.info), deregisterAfterMs: parsed.map((p) => p.deregisterAfterMs) };
}

/** Every live member's record, for node lookups (name → member). */
type NodeShape = Pick<Member, 'name' | 'addr' | 'meta'>;

/**
 * The node an instance is listed under: its live member, or for an instance a bridge imported,
 * an external node (Consul's term for services without an agent) named after its origin.
 */
export function nodeOf(i: Instance, members: Map<string, Member>): NodeShape | undefined {
  if (i.source === 'gossip') return members.get(i.node);
  return { name: i.node, addr: i.hostPort, meta: { 'external-source': i.source, ...(i.pool !== '' ? { pool: i.pool } : {}) } };
}

export function liveMembers(gv: Grapevine): Map<string, Member> {
  const out = new Map<string, Member>();
  for (const m of gv.members()) if (m.state === 'alive' || m.state === 'suspect') out.set(m.name, m);
  return out;
}
