/**
 * Consul's /v1/catalog and /v1/health endpoints over this member's catalog: every read is local
 * memory. `?tag=` (several), `?node-meta=key:value` (several), `?passing` and `?filter=` narrow
 * the answers as in Consul.
 */
import type { Instance, Member } from '../registry/index.js';
import { filterOf } from './agent.js';
import { catalogService, checksOf, consulNode, DATACENTER, liveMembers, type NodeShape, nodeChecksOf, nodeOf, agentService, serfHealth } from './consul.js';
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
  const nodes = (req: Request): Member[] => {
    const nodeMeta = nodeMetaOf(req.query);
    return [...liveMembers(gv).values()].filter((m) => nodeMeta.every(([k, v]) => m.meta[k] === v));
  };
  /** A node's checks: serf's, the node's own, then its instances'. */
  const nodeHealth = (node: string, index: number): Record<string, unknown>[] => [
    serfHealth(node, index), ...nodeChecksOf(gv, node, index), ...gv.catalog.nodeInstances(node).flatMap((i) => checksOf(gv, i, index)),
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
    return { body: nodes(req).map((m) => consulNode(m, index)).filter(keep) };
  }, { index: nodeIndex });
  api.route('GET', '/v1/catalog/node/:node', (req) => {
    const m = liveMembers(gv).get(req.params[0] as string);
    if (m === undefined) return { body: null };
    const index = api.nodeIndex();
    const keep = filterOf(req.query, SCHEMAS.agentService);
    return { body: { Node: consulNode(m, index), Services: Object.fromEntries(gv.catalog.nodeInstances(m.name).map((i) => [i.id, agentService(i, index)]).filter(([, s]) => keep(s))) } };
  }, { index: nodeIndex });
  api.route('GET', '/v1/catalog/node-services/:node', (req) => {
    const m = liveMembers(gv).get(req.params[0] as string);
    if (m === undefined) throw new HttpError(404, `Node not found: ${req.params[0] as string}`);
    const index = api.nodeIndex();
    const keep = filterOf(req.query, SCHEMAS.agentService);
    return { body: { Node: consulNode(m, index), Services: gv.catalog.nodeInstances(m.name).map((i) => agentService(i, index)).filter(keep) } };
  }, { index: nodeIndex });

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
          // An imported instance has no member, so no serf or node checks: its health is its entry's.
          Checks: [...(i.source === 'gossip' ? [serfHealth(i.node, index), ...nodeChecksOf(gv, i.node, index)] : []), ...checksOf(gv, i, index)],
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
    const node = req.params[0] as string;
    if (!liveMembers(gv).has(node)) return { body: [] };
    const keep = filterOf(req.query, SCHEMAS.check);
    return { body: nodeHealth(node, api.nodeIndex()).filter(keep) };
  }, { index: nodeIndex });
  api.route('GET', '/v1/health/state/:state', (req) => {
    const state = req.params[0] as string;
    if (!['any', 'passing', 'warning', 'critical'].includes(state)) throw new HttpError(400, `Invalid state: ${state}; one of any, passing, warning, critical`);
    const index = api.nodeIndex();
    const keep = filterOf(req.query, SCHEMAS.check);
    const all = nodes(req).flatMap((m) => nodeHealth(m.name, index));
    return { body: all.filter((c) => (state === 'any' || c.Status === state) && keep(c)) };
  }, { index: nodeIndex });
}

/** `?node-meta=key:value`, each one required. */
function nodeMetaOf(query: URLSearchParams): [string, string][] {
  return query.getAll('node-meta').map((kv) => {
    const at = kv.indexOf(':');
    if (at < 1) throw new HttpError(400, `node-meta: must be "key:value", got ${JSON.stringify(kv)}`);
    return [kv.slice(0, at), kv.slice(at + 1)];
  });
}
