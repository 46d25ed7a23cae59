/**
 * Grapevine's model in Consul's JSON: nodes, catalog entries, health entries and checks, with
 * Consul's field names (shapes as in Consul's Go `api` package), and Consul's registration body
 * turned into a Registration.
 *
 * What differs, by design: there is one datacenter ("dc1") and no servers; a node's ID is
 * derived from its name; every live member has a passing `serfHealth` check (a suspect one too,
 * as in Consul, whose catalog learns only of failures). An instance's checks are the ones its
 * owner runs, spread in its record (name, type, status, output, notes); an instance that has
 * none shows one check, `service:<id>`, with its health. Dead members are gone from the
 * catalog at once rather than held critical until reaped.
 */
import { createHash } from 'node:crypto';
import { type CheckRecord, HEALTH, type Health, type Instance, type Member } from '../registry/index.js';
import { type CheckDefinition, type Grapevine, hostOf, InvalidOptionError, type Registration, type StandaloneCheck } from '../runtime/index.js';
import { GoObject } from './decode.js';

export const DATACENTER = 'dc1';

/** A stable UUID-shaped node ID derived from the member's name (Consul clients expect one). */
export function nodeId(name: string): string {
  const h = createHash('sha256').update(name).digest('hex');
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20, 32)}`;
}

export function portOf(addr: string): number {
  return Number(addr.slice(addr.lastIndexOf(':') + 1));
}

/** What a node is shown with: a member, or the external node of an imported instance. */
export type NodeShape = Pick<Member, 'name' | 'addr' | 'meta'>;

export function consulNode(m: NodeShape, index: number): Record<string, unknown> {
  const address = hostOf(m.addr);
  return {
    ID: nodeId(m.name), Node: m.name, Address: address, Datacenter: DATACENTER,
    TaggedAddresses: { lan: address, lan_ipv4: address, wan: address, wan_ipv4: address }, Meta: m.meta, CreateIndex: index, ModifyIndex: index,
  };
}

function weights(i: Instance): { Passing: number; Warning: number } {
  return { Passing: i.weight, Warning: i.warningWeight };
}

function taggedAddresses(i: Instance): Record<string, { Address: string; Port: number }> {
  return Object.fromEntries(Object.entries(i.taggedAddresses).map(([k, a]) => [k, { Address: a.address, Port: a.port }]));
}

/** A hash of what an agent service shows: Consul's ContentHash, for `?hash=` blocking. */
export function contentHash(i: Instance): string {
  return createHash('sha256').update(JSON.stringify([i.id, i.service, i.tags, i.meta, i.port, i.address, i.taggedAddresses, i.weight, i.warningWeight])).digest('hex').slice(0, 16);
}

/** An instance as /v1/agent/services and /v1/agent/service/:id show it (api.AgentService). */
export function agentService(i: Instance, index?: number): Record<string, unknown> {
  return {
    Kind: '', ID: i.id, Service: i.service, Tags: i.tags, Meta: i.meta, Port: i.port, Address: i.address,
    TaggedAddresses: taggedAddresses(i), Weights: weights(i), EnableTagOverride: false, ContentHash: contentHash(i), Datacenter: DATACENTER,
    ...(index !== undefined ? { CreateIndex: index, ModifyIndex: index } : {}),
  };
}

/** An instance as /v1/catalog/service/:name lists it (api.CatalogService). */
export function catalogService(i: Instance, node: NodeShape, index: number): Record<string, unknown> {
  const n = consulNode(node, index);
  return {
    ID: n.ID, Node: n.Node, Address: n.Address, Datacenter: DATACENTER, TaggedAddresses: n.TaggedAddresses,
    NodeMeta: node.meta, ServiceKind: '', ServiceID: i.id, ServiceName: i.service, ServiceTags: i.tags, ServiceAddress: i.address,
    ServiceTaggedAddresses: taggedAddresses(i), ServiceWeights: weights(i), ServiceMeta: i.meta, ServicePort: i.port,
    ServiceEnableTagOverride: false, ServiceProxy: {}, ServiceConnect: {}, CreateIndex: index, ModifyIndex: index,
  };
}

/** A check that is no check of the owner's (serf's, or one standing for an instance's health). */
function synthetic(id: string, name: string, status: Health, output: string): CheckRecord {
  return { id, name, type: '', status, output, notes: '', intervalMs: 0, timeoutMs: 0 };
}

export function serfHealth(node: string, index: number): Record<string, unknown> {
  return check(node, synthetic('serfHealth', 'Serf Health Status', 'passing', 'Agent alive and reachable'), undefined, index);
}

/** The checks of an instance (its own, or the one standing for its health when it has none). */
export function serviceChecks(i: Instance, index: number): Record<string, unknown>[] {
  if (i.checks.length === 0) {
    return [check(i.node, synthetic(`service:${i.id}`, `Service '${i.service}' check`, i.health, ''), i, index)];
  }
  return i.checks.map((c) => check(i.node, c, i, index));
}

/** A node's own checks (maintenance, checks of no service): ServiceID "". */
export function nodeChecks(node: string, checks: readonly CheckRecord[], index: number): Record<string, unknown>[] {
  return checks.map((c) => check(node, c, undefined, index));
}

function check(node: string, c: CheckRecord, i: Instance | undefined, index: number): Record<string, unknown> {
  const interval = goDuration(c.intervalMs);
  const timeout = goDuration(c.timeoutMs);
  return {
    Node: node, CheckID: c.id, Name: c.name, Status: c.status, Notes: c.notes, Output: c.output,
    ServiceID: i?.id ?? '', ServiceName: i?.service ?? '', ServiceTags: i?.tags ?? [], Type: c.type,
    Interval: c.intervalMs === 0 ? '' : interval, Timeout: c.timeoutMs === 0 ? '' : timeout, ExposedPort: 0,
    // Go's api.HealthCheckDefinition fails on "" or null durations: zero is "0s".
    Definition: { Interval: interval, Timeout: timeout, DeregisterCriticalServiceAfter: '0s' },
    CreateIndex: index, ModifyIndex: index,
  };
}

/** Milliseconds as Go's time.Duration.String() writes them: "0s", "500ms", "1.5s", "1m30s", "1h0m0s". */
export function goDuration(ms: number): string {
  if (ms === 0) return '0s';
  if (ms < 1_000) return `${ms}ms`;
  const h = Math.floor(ms / 3_600_000);
  const m = Math.floor((ms % 3_600_000) / 60_000);
  const s = `${(ms % 60_000) / 1_000}s`;
  return h > 0 ? `${h}h${m}m${s}` : m > 0 ? `${m}m${s}` : s;
}

/**
 * An instance's checks as a member answers them; on the member that owns it, each check's
 * status and output are read live (the record carries output changes only every few minutes).
 */
export function checksOf(gv: Grapevine, i: Instance, index: number): Record<string, unknown>[] {
  const checks = serviceChecks(i, index);
  return i.node === gv.name ? checks.map((c) => live(gv, c)) : checks;
}

/** A node's own checks (live on the member itself). */
export function nodeChecksOf(gv: Grapevine, node: string, index: number): Record<string, unknown>[] {
  const checks = nodeChecks(node, gv.catalog.nodeChecks(node), index);
  return node === gv.name ? checks.map((c) => live(gv, c)) : checks;
}

function live(gv: Grapevine, c: Record<string, unknown>): Record<string, unknown> {
  const h = gv.check(c.CheckID as string);
  return h === undefined ? c : { ...c, Status: h.status, Output: h.output };
}

/** Consul's AggregatedStatus: "maintenance" if a maintenance check is there, else the worst status (none: passing). */
export function aggregatedStatus(checks: readonly { CheckID?: unknown; Status?: unknown }[]): Health | 'maintenance' {
  if (checks.some((c) => c.CheckID === '_node_maintenance' || String(c.CheckID).startsWith('_service_maintenance:'))) return 'maintenance';
  return checks.some((c) => c.Status === 'critical') ? 'critical' : checks.some((c) => c.Status === 'warning') ? 'warning' : 'passing';
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

/** A Consul registration turned into ours, with the one Consul-only field the agent keeps itself. */
export interface ParsedRegistration {
  registration: Registration;
  /** Deregister the service after one of its checks has been critical this long (0: never). */
  deregisterAfterMs: number;
}

/** Shortest check interval we run (ours and Consul's minimum); shorter ones are raised to it, as Consul does. */
const INTERVAL_MIN_MS = 1_000;
/** Check kinds Consul runs that we do not: refused by name rather than registered as something else. */
const UNSUPPORTED_CHECKS = ['Args', 'ScriptArgs', 'Script', 'Shell', 'GRPC', 'DockerContainerID', 'H2PING', 'AliasService', 'AliasNode', 'UDP', 'OSService'];
/** Check options we cannot honour: refused when given a non-zero value. */
const UNSUPPORTED_CHECK_OPTIONS = ['TLSServerName', 'GRPCUseTLS', 'H2PingUseTLS', 'OutputMaxSize', 'FailuresBeforeWarning'];
/** Service fields we cannot honour (Connect, sockets, locality): refused when given a non-zero value. */
const UNSUPPORTED_SERVICE_FIELDS = ['Kind', 'Proxy', 'Connect', 'SocketPath', 'Locality', 'EnableTagOverride'];

const WHY: Record<string, string> = {
  EnableTagOverride: 'there are no servers whose catalog could override a member\'s tags',
  Kind: 'Connect proxies and gateways are not supported',
  Proxy: 'Connect proxies are not supported',
  Connect: 'Consul Connect is not supported',
  OutputMaxSize: 'outputs are kept to 4096 bytes',
};

/** Namespaces and partitions are Consul Enterprise's; only the default one exists here. */
function refuseTenancy(o: GoObject): void {
  for (const f of ['Namespace', 'Partition']) {
    const v = o.string(f);
    if (v !== undefined && v !== '' && v !== 'default') throw new InvalidOptionError(o.at(f), `only "default" exists here, got ${JSON.stringify(v)}`);
  }
}

function refuse(o: GoObject, fields: readonly string[], what: string): void {
  const given = o.present(fields)[0];
  if (given !== undefined) throw new InvalidOptionError(o.at(given), WHY[given] ?? `not supported by grapevine's ${what}`);
}

/**
 * One Consul check definition → ours (a standalone check also names its instance, `ServiceID`).
 * `manual`: a check with no HTTP, TCP or TTL is one whose status the caller sets (catalog checks).
 */
export function parseCheck(c: GoObject, warn: (m: string) => void, manual = false): { def: StandaloneCheck; deregisterAfterMs: number } {
  const kinds = c.present(UNSUPPORTED_CHECKS);
  if (kinds.length > 0) throw new InvalidOptionError(c.at(kinds[0] as string), `${kinds.join(', ')} checks are not supported; use HTTP, TCP or TTL`);
  refuse(c, UNSUPPORTED_CHECK_OPTIONS, 'checks');
  refuseTenancy(c);
  const id = c.string('CheckID') || c.string('ID') || undefined;
  const name = c.string('Name') || undefined;
  const notes = c.string('Notes') || undefined;
  const status = c.string('Status') || undefined;
  if (status !== undefined && !HEALTH.includes(status as Health)) throw new InvalidOptionError(c.at('Status'), 'must be passing, warning or critical');
  const serviceId = c.string('ServiceID') || undefined;
  const described = {
    ...(id !== undefined ? { id } : {}), ...(name !== undefined ? { name } : {}), ...(notes !== undefined ? { notes } : {}),
    ...(status !== undefined ? { status: status as Health } : {}), ...(serviceId !== undefined ? { serviceId } : {}),
  };
  const deregisterAfterMs = c.duration('DeregisterCriticalServiceAfter') ?? 0;
  const atLeastOneSecond = (field: string, ms: number): number => {
    if (ms >= INTERVAL_MIN_MS) return ms;
    warn(`check ${id ?? name ?? ''}: ${field} of ${ms} ms is below the 1s minimum; using 1s`);
    return INTERVAL_MIN_MS;
  };
  const timing = (): { intervalMs: number; timeoutMs?: number; rise: number; fall: number } => {
    const interval = c.duration('Interval');
    if (interval === undefined) throw new InvalidOptionError(c.at('Interval'), 'required for HTTP and TCP checks');
    const timeout = c.duration('Timeout');
    // Consul's defaults: the first result counts and every later one too (0 means 1).
    return {
      intervalMs: atLeastOneSecond('Interval', interval), ...(timeout !== undefined ? { timeoutMs: Math.max(1, timeout) } : {}),
      rise: Math.max(1, c.int('SuccessBeforePassing', 0, 100) ?? 0), fall: Math.max(1, c.int('FailuresBeforeCritical', 0, 100) ?? 0),
    };
  };
  const http = c.string('HTTP');
  if (http) {
    const header = c.stringListMap('Header');
    const method = c.string('Method') || undefined;
    const body = c.string('Body') || undefined;
    const headers = header === undefined ? undefined : Object.fromEntries(Object.entries(header).map(([k, v]) => [k, v.join(', ')]));
    return {
      def: {
        ...described, http, ...timing(), ...(headers !== undefined ? { headers } : {}), ...(method !== undefined ? { method } : {}),
        ...(body !== undefined ? { body } : {}), ...(c.bool('TLSSkipVerify') === true ? { tlsSkipVerify: true } : {}),
        // Consul follows redirects as Go's client does, up to 10, unless told not to.
        redirects: c.bool('DisableRedirects') === true ? 0 : 10,
      },
      deregisterAfterMs,
    };
  }
  const tcp = c.string('TCP');
  if (tcp) return { def: { ...described, tcp, ...timing() }, deregisterAfterMs };
  const ttl = c.duration('TTL');
  if (ttl !== undefined) return { def: { ...described, ttlMs: atLeastOneSecond('TTL', ttl) }, deregisterAfterMs };
  if (manual) return { def: { ...described, status: described.status ?? 'critical' }, deregisterAfterMs };
  throw new InvalidOptionError(c.path === '' ? 'Check' : c.path, 'needs one of HTTP, TCP or TTL');
}

/** Consul's PUT /v1/agent/service/register body → a Registration (field errors name Consul's field). */
export function parseRegistration(body: unknown, warn: (m: string) => void): ParsedRegistration {
  const b = GoObject.of(body);
  refuse(b, UNSUPPORTED_SERVICE_FIELDS, 'services');
  refuseTenancy(b);
  const name = b.string('Name');
  if (name === undefined || name === '') throw new InvalidOptionError('Name', 'missing service name');
  const id = b.string('ID') || name;
  const address = b.string('Address');
  const tags = b.strings('Tags');
  const meta = b.stringMap('Meta');
  const w = b.object('Weights');
  const weight = w?.int('Passing', 0);
  const warningWeight = w?.int('Warning', 0);
  const tagged = b.objectMap('TaggedAddresses');
  const one = b.object('Check');
  const defs = [...(one !== undefined && !one.empty ? [one] : []), ...(b.objects('Checks') ?? [])];
  const parsed = defs.map((c) => parseCheck(c, warn));
  if (parsed.some((p) => p.def.serviceId !== undefined && p.def.serviceId !== id)) {
    throw new InvalidOptionError('Checks.ServiceID', 'a service\'s checks belong to it; register checks of other services with /v1/agent/check/register');
  }
  const registration: Registration = {
    name, id, port: b.int('Port', 0, 65_535) ?? 0,
    ...(address ? { address } : {}),
    ...(tags !== undefined ? { tags } : {}),
    ...(meta !== undefined ? { meta } : {}),
    // Consul: a Passing weight of 0 (Go's zero value) means the default, 1.
    ...(weight ? { weight } : {}),
    ...(warningWeight !== undefined ? { warningWeight } : {}),
    ...(tagged !== undefined ? { taggedAddresses: Object.fromEntries(Object.entries(tagged).map(([k, a]) => [k, { address: a.string('Address') ?? '', port: a.int('Port', 0, 65_535) ?? 0 }])) } : {}),
    ...(parsed.length > 0 ? { checks: parsed.map((p) => withoutService(p.def)) } : {}),
  };
  const after = parsed.map((p) => p.deregisterAfterMs).filter((ms) => ms > 0);
  return { registration, deregisterAfterMs: after.length > 0 ? Math.min(...after) : 0 };
}

function withoutService(def: StandaloneCheck): CheckDefinition {
  const { serviceId: _, ...check } = def;
  return check;
}

/** A Consul catalog registration (PUT /v1/catalog/register) of an external node. */
export interface CatalogRegistration {
  node: string;
  /** The service to register, with its checks; absent when only checks are updated. */
  registration: Registration | undefined;
  /** Checks (with ServiceID) of instances registered before: added, or their status set. */
  checks: StandaloneCheck[];
  /** Checks whose status the caller sets: the status and output it gave, by check id. */
  stated: Map<string, { status: Health; output: string }>;
}

/**
 * Consul's catalog registration body. Checks come as api.AgentCheck: how to run them in
 * `Definition` (HTTP, TCP, Interval, ...), else a status the caller sets, as Consul's ESM does.
 */
export function parseCatalogRegistration(body: unknown, warn: (m: string) => void): CatalogRegistration {
  const b = GoObject.of(body);
  refuseTenancy(b);
  const node = b.string('Node');
  if (!node) throw new InvalidOptionError('Node', 'missing node name');
  const dc = b.string('Datacenter');
  if (dc && dc !== DATACENTER) throw new InvalidOptionError('Datacenter', `only ${DATACENTER} exists here`);
  if (b.present(['TaggedAddresses']).length > 0) throw new InvalidOptionError('TaggedAddresses', 'an external node\'s tagged addresses are not kept; give its Address');
  const stated = new Map<string, { status: Health; output: string }>();
  const checks = [...(b.has('Check') ? [b.object('Check') as GoObject] : []), ...(b.objects('Checks') ?? [])].filter((c) => !c.empty).map((c) => {
    // Definition's fields (how to run it) read as if they were the check's own.
    const definition = c.object('Definition');
    const merged = GoObject.of({ ...(definition === undefined ? {} : (c.raw('Definition') as object)), ...pickFields(c.raw.bind(c), ['CheckID', 'ID', 'Name', 'Notes', 'Status', 'ServiceID', 'Output']) }, c.path);
    const checkNode = c.string('Node');
    if (checkNode && checkNode !== node) throw new InvalidOptionError(c.at('Node'), `must be the registration's node, ${node}`);
    const { def } = parseCheck(merged, warn, true);
    // A check with no way to run it (`status` alone) is one whose status the caller sets.
    if (Object.keys(def).every((k) => ['id', 'name', 'notes', 'status', 'serviceId'].includes(k)) && def.status !== undefined) {
      stated.set(def.id ?? `service:${def.serviceId ?? ''}`, { status: def.status, output: c.string('Output') ?? '' });
    }
    return def;
  });
  const s = b.object('Service');
  if (s === undefined || s.empty) {
    if (checks.length === 0) throw new InvalidOptionError('Service', 'an external node is kept with its services: register it with a Service');
    const loose = checks.find((c) => c.serviceId === undefined);
    if (loose !== undefined) throw new InvalidOptionError('Check.ServiceID', 'checks of an external node belong to one of its services: name it');
    return { node, registration: undefined, checks, stated };
  }
  refuse(s, UNSUPPORTED_SERVICE_FIELDS, 'services');
  const name = s.string('Service');
  if (!name) throw new InvalidOptionError('Service.Service', 'missing service name');
  const id = s.string('ID') || name;
  const address = b.string('Address');
  if (!address) throw new InvalidOptionError('Address', 'an external node needs its address');
  const own = checks.filter((c) => c.serviceId === undefined || c.serviceId === id);
  if (own.length < checks.length) throw new InvalidOptionError('Check.ServiceID', `checks registered with a service belong to it (${id})`);
  const parsed = parseRegistration({ ...pickFields(s.raw.bind(s), ['ID', 'Tags', 'Meta', 'Port', 'Address', 'Weights', 'TaggedAddresses']), Name: name, ID: id }, warn);
  const registration: Registration = {
    ...parsed.registration,
    external: { node, address, ...(b.stringMap('NodeMeta') !== undefined ? { meta: b.stringMap('NodeMeta') as Record<string, string> } : {}) },
    ...(own.length > 0 ? { checks: own.map((c) => withoutService(c)) } : {}),
  };
  return { node, registration, checks: [], stated };
}

/** The named fields of a struct, as sent: for re-reading part of one as another struct. */
function pickFields(raw: (name: string) => unknown, names: readonly string[]): Record<string, unknown> {
  return Object.fromEntries(names.flatMap((n) => (raw(n) === undefined ? [] : [[n, raw(n)]])));
}

/**
 * The node an instance is listed under: its live member; the external node it was registered
 * for (while the member that spreads it lives); or for an instance a bridge imported, an external
 * node named after its origin.
 */
export function nodeOf(i: Instance, members: Map<string, Member>): NodeShape | undefined {
  if (i.source === 'gossip') {
    if (i.external === undefined) return members.get(i.node);
    return members.has(i.node) ? { name: i.external.node, addr: i.external.address, meta: i.external.meta } : undefined;
  }
  return { name: i.node, addr: i.hostPort, meta: { 'external-source': i.source, ...(i.pool !== '' ? { pool: i.pool } : {}) } };
}

/** Whether an instance's node is a member (with serf's check and node checks) rather than an external one. */
export function onMember(i: Instance): boolean {
  return i.source === 'gossip' && i.external === undefined;
}

/** External nodes (registered through /v1/catalog/register) by name, with their instances. */
export function externalNodes(gv: Grapevine): Map<string, { node: NodeShape; instances: Instance[] }> {
  const members = liveMembers(gv);
  const out = new Map<string, { node: NodeShape; instances: Instance[] }>();
  for (const name of gv.services()) {
    for (const i of gv.lookup(name)) {
      if (i.external === undefined) continue;
      const node = nodeOf(i, members);
      if (node === undefined) continue;
      const entry = out.get(node.name) ?? { node, instances: [] };
      entry.instances.push(i);
      out.set(node.name, entry);
    }
  }
  return out;
}

export function liveMembers(gv: Grapevine): Map<string, Member> {
  const out = new Map<string, Member>();
  for (const m of gv.members()) if (m.state === 'alive' || m.state === 'suspect') out.set(m.name, m);
  return out;
}
