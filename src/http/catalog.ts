/**
 * Consul's /v1/catalog and /v1/health endpoints over this member's catalog: every read is local
 * memory. `?tag=` (several), `?node-meta=key:value` (several), `?passing` and `?filter=` narrow
 * the answers as in Consul.
 */
import type { Instance } from '../registry/index.js';
import { filterOf } from './agent.js';
import { GoObject } from './decode.js';
import { agentService, catalogService, checksOf, consulNode, DATACENTER, externalNodes, liveMembers, type NodeShape, nodeChecksOf, nodeOf, onMember, type CatalogRegistration, parseCatalogRegistration, serfHealth } from './consul.js';
import { SCHEMAS } from './filter.js';
import { type Api, flag, HttpError, type Request } from './routes.js';

export function catalogEndpoints(api: Api): void {
  const gv = api.gv;
  const catalogIndex = (): number => api.catalogIndex();
  const nodeIndex = (): number => api.nodeIndex();
  const serviceIndex = (p: string[]): number => api.serviceIndex(p[0] as string);

  /** Instances of the path's service with their nodes, narrowed by `?tag=` and `?node-meta=`. */
  const entries = (req: Request): { i: Instance; node: NodeShape }[] => {
    const tags = req.query.getAll('tag');
    const nodeMeta = nodeMetaOf(req.query);
    const members = liveMembers(gv);
    return gv.lookup(req.params[0] as string, tags.length > 0 ? { tags } : undefined).flatMap((i) => {
      const node = nodeOf(i, members);
      return node === undefined || !nodeMeta.every(([k, v]) => node.meta[k] === v) ? [] : [{ i, node }];
    });
  };
  /** A node by name: a live member with its own instances, or an external node with the instances registered for it. */
  const nodeView = (name: string): NodeView | undefined => {
    const m = liveMembers(gv).get(name);
    if (m !== undefined) return { node: m, member: true, instances: gv.catalog.nodeInstances(name).filter(onMember) };
    const e = externalNodes(gv).get(name);
    return e === undefined ? undefined : { ...e, member: false };
  };
  const nodes = (req: Request): NodeView[] => {
    const nodeMeta = nodeMetaOf(req.query);
    const members: NodeView[] = [...liveMembers(gv).values()].map((m) => ({ node: m, member: true, instances: gv.catalog.nodeInstances(m.name).filter(onMember) }));
    const external: NodeView[] = [...externalNodes(gv).values()].map((e) => ({ ...e, member: false }));
    return [...members, ...external].filter((v) => nodeMeta.every(([k, val]) => v.node.meta[k] === val));
  };
  /** A node's checks: serf's and the node's own (members only), then its instances'. */
  const nodeHealth = (v: NodeView, index: number): Record<string, unknown>[] => [
    ...(v.member ? [serfHealth(v.node.name, index), ...nodeChecksOf(gv, v.node.name, index)] : []), ...v.instances.flatMap((i) => checksOf(gv, i, index)),
  ];

  api.route('GET', '/v1/catalog/datacenters', () => ({ body: [DATACENTER] }), { index: nodeIndex });
  api.route('GET', '/v1/catalog/services', (req) => {
    const nodeMeta = nodeMetaOf(req.query);
    const members = liveMembers(gv);
    const keep = filterOf(req.query, SCHEMAS.catalogService);
    const index = api.catalogIndex();
    const out: Record<string, string[]> = {};
    for (const name of gv.services().sort()) {
      const instances = gv.lookup(name).filter((i) => {
        const node = nodeOf(i, members);
        return node !== undefined && nodeMeta.every(([k, v]) => node.meta[k] === v) && keep(catalogService(i, node, index));
      });
      if (instances.length > 0) out[name] = [...new Set(instances.flatMap((i) => i.tags))];
    }
    return { body: out };
  }, { index: catalogIndex });
  api.route('GET', '/v1/catalog/service/:name', (req) => {
    const index = api.serviceIndex(req.params[0] as string);
    const keep = filterOf(req.query, SCHEMAS.catalogService);
    return { body: entries(req).map(({ i, node }) => catalogService(i, node, index)).filter(keep) };
  }, { index: serviceIndex });
  api.route('GET', '/v1/catalog/nodes', (req) => {
    const index = api.nodeIndex();
    const keep = filterOf(req.query, SCHEMAS.node);
    return { body: nodes(req).map((v) => consulNode(v.node, index)).filter(keep) };
  }, { index: nodeIndex });
  api.route('GET', '/v1/catalog/node/:node', (req) => {
    const v = nodeView(req.params[0] as string);
    if (v === undefined) return { body: null };
    const index = api.nodeIndex();
    const keep = filterOf(req.query, SCHEMAS.agentService);
    return { body: { Node: consulNode(v.node, index), Services: Object.fromEntries(v.instances.map((i) => [i.id, agentService(i, index)]).filter(([, s]) => keep(s))) } };
  }, { index: nodeIndex });
  api.route('GET', '/v1/catalog/node-services/:node', (req) => {
    const v = nodeView(req.params[0] as string);
    if (v === undefined) throw new HttpError(404, `Node not found: ${req.params[0] as string}`);
    const index = api.nodeIndex();
    const keep = filterOf(req.query, SCHEMAS.agentService);
    return { body: { Node: consulNode(v.node, index), Services: v.instances.map((i) => agentService(i, index)).filter(keep) } };
  }, { index: nodeIndex });

  // External services (nodes that run no member): this member spreads and checks them until it
  // deregisters them or is gone itself; another member cannot change them.
  api.route('PUT', '/v1/catalog/register', async (req) => {
    const r = parseCatalogRegistration(await req.body(), (m) => api.log.warn(m, {}));
    if (liveMembers(gv).has(r.node)) throw new HttpError(400, `Node: ${r.node} is a member: register its services through its own agent (/v1/agent/service/register)`);
    if (r.registration !== undefined) {
      const id = r.registration.id as string;
      const mine = gv.catalog.nodeInstances(gv.name).find((i) => i.id === id);
      if (mine !== undefined && mine.external?.node !== r.node) throw new HttpError(400, `Service.ID: ${id} is already an instance on this member; external service ids are unique per member`);
      refuseForeign(r.node, id);
      const handle = gv.register({ ...r.registration, persist: true });
      await Promise.race([handle, new Promise((done) => setImmediate(done))]);
      handle.catch(() => undefined);
      restate(r.stated);
      return { body: true };
    }
    for (const c of r.checks) {
      const serviceId = c.serviceId as string;
      if (!externalOf(r.node).some((i) => i.id === serviceId)) {
        refuseForeign(r.node, serviceId);
        throw new HttpError(404, `Unknown service ID "${serviceId}" on node ${r.node}`);
      }
      const id = c.id ?? `service:${serviceId}`;
      // A check whose status is only stated again (Consul's ESM updates them so) is kept; anything else adds or replaces it.
      if (!(r.stated.has(id) && gv.check(id)?.type === '')) await gv.addCheck({ ...c, id, persist: true });
    }
    restate(r.stated);
    return { body: true };
  });
  api.route('PUT', '/v1/catalog/deregister', async (req) => {
    const b = GoObject.of(await req.body());
    const node = b.string('Node');
    if (!node) throw new HttpError(400, 'Node: missing node name');
    if (liveMembers(gv).has(node)) throw new HttpError(400, `Node: ${node} is a member: deregister its services through its own agent`);
    const serviceId = b.string('ServiceID') || undefined;
    const checkId = b.string('CheckID') || undefined;
    const instances = externalOf(node).filter((i) => serviceId === undefined || i.id === serviceId);
    if (instances.length === 0) {
      refuseForeign(node, serviceId);
      return { body: true };
    }
    if (checkId !== undefined) {
      gv.removeCheck(checkId);
      return { body: true };
    }
    for (const i of instances) await gv.deregister(i.id);
    return { body: true };
  });

  /** Sets the status and output of the checks whose status the caller states. */
  const restate = (stated: CatalogRegistration['stated']): void => {
    for (const [id, { status, output }] of stated) {
      const h = gv.check(id);
      if (h !== undefined && h.type === '') ({ passing: h.pass, warning: h.warn, critical: h.fail } as const)[status](output);
    }
  };

  /** Instances this member registered for external node `node`. */
  const externalOf = (node: string): Instance[] => gv.catalog.nodeInstances(gv.name).filter((i) => i.external?.node === node);
  /** An external node's instance another member registered: only that member can change it. */
  const refuseForeign = (node: string, id: string | undefined): void => {
    const theirs = externalNodes(gv).get(node)?.instances.find((i) => i.node !== gv.name && (id === undefined || i.id === id));
    if (theirs !== undefined) throw new HttpError(400, `${theirs.id} on ${node} was registered by member ${theirs.node}: change it there`);
  };

  api.route('GET', '/v1/health/service/:name', (req) => {
    const index = api.serviceIndex(req.params[0] as string);
    const passing = flag(req.query, 'passing');
    const keep = filterOf(req.query, SCHEMAS.serviceEntry);
    return {
      body: entries(req).flatMap(({ i, node }) => {
        if (passing && i.health !== 'passing') return [];
        const entry = {
          Node: consulNode(node, index),
          Service: agentService(i, index),
          // An external or imported instance has no member of its own, so no serf or node checks.
          Checks: [...(onMember(i) ? [serfHealth(i.node, index), ...nodeChecksOf(gv, i.node, index)] : []), ...checksOf(gv, i, index)],
        };
        return keep(entry) ? [entry] : [];
      }),
    };
  }, { index: serviceIndex });
  api.route('GET', '/v1/health/checks/:name', (req) => {
    const index = api.serviceIndex(req.params[0] as string);
    const keep = filterOf(req.query, SCHEMAS.check);
    return { body: entries(req).flatMap(({ i }) => checksOf(gv, i, index)).filter(keep) };
  }, { index: serviceIndex });
  api.route('GET', '/v1/health/node/:node', (req) => {
    const v = nodeView(req.params[0] as string);
    if (v === undefined) return { body: [] };
    const keep = filterOf(req.query, SCHEMAS.check);
    return { body: nodeHealth(v, api.nodeIndex()).filter(keep) };
  }, { index: nodeIndex });
  api.route('GET', '/v1/health/state/:state', (req) => {
    const state = req.params[0] as string;
    if (!['any', 'passing', 'warning', 'critical'].includes(state)) throw new HttpError(400, `Invalid state: ${state}; one of any, passing, warning, critical`);
    const index = api.nodeIndex();
    const keep = filterOf(req.query, SCHEMAS.check);
    const all = nodes(req).flatMap((v) => nodeHealth(v, index));
    return { body: all.filter((c) => (state === 'any' || c.Status === state) && keep(c)) };
  }, { index: nodeIndex });
}

interface NodeView {
  node: NodeShape;
  /** A member (with serf's check and node checks), or an external node. */
  member: boolean;
  instances: Instance[];
}

/** `?node-meta=key:value`, each one required. */
function nodeMetaOf(query: URLSearchParams): [string, string][] {
  return query.getAll('node-meta').map((kv) => {
    const at = kv.indexOf(':');
    if (at < 1) throw new HttpError(400, `node-meta: must be "key:value", got ${JSON.stringify(kv)}`);
    return [kv.slice(0, at), kv.slice(at + 1)];
  });
}
