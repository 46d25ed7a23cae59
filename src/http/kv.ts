/**
 * Consul's /v1/kv over this member's replica of the key-value store (gv.kv): GET with ?recurse,
 * ?keys and ?separator, ?raw, blocking on the key's (or prefix's) modify index; PUT with ?flags
 * and the raw body as the value, answering true; DELETE with ?recurse. X-Consul-Index on every
 * answer, 404 included. What needs consensus (?cas, ?acquire, ?release, sessions, /v1/txn) is
 * refused with 400 saying why: the store is eventually consistent, last writer wins.
 */
import type { Grapevine } from '../runtime/index.js';
import type { KvEntry } from '../registry/kv.js';
import { type Api, flag, HttpError, type Reply } from './routes.js';

// Short: the consul npm client shows an error's body only under 80 characters.
const EVENTUAL = 'needs consensus; this store is eventually consistent';

export function kvEndpoints(api: Api): void {
  const { gv } = api;
  const kv = (): Grapevine['kv'] => {
    try {
      return gv.kv;
    } catch {
      throw new HttpError(501, 'this member runs no key-value store (kv: false)');
    }
  };
  try {
    const unsubscribe = gv.kv.onChange(() => api.wake());
    api.onClose(unsubscribe);
  } catch {
    // started with kv: false: the routes say so
  }
  const scope = (params: string[], query: URLSearchParams): { key: string; exact: boolean } => {
    const key = params[0] ?? '';
    return { key, exact: !flag(query, 'recurse') && !query.has('keys') };
  };
  // Never 0: Consul's clients take index 0 for "do not block".
  const indexOf = (params: string[], query: URLSearchParams): number => {
    const s = scope(params, query);
    return Math.max(1, kv().indexOf(s.key, s.exact));
  };

  api.route('GET', '/v1/kv/*', (req) => {
    const store = kv();
    const { key, exact } = scope(req.params, req.query);
    const index = indexOf(req.params, req.query);
    if (req.query.has('keys')) {
      const keys = store.keys(key, req.query.get('separator') ?? undefined);
      return keys.length === 0 ? notFound(index) : { body: keys, index };
    }
    if (!exact) {
      const entries = store.list(key);
      return entries.length === 0 ? notFound(index) : json(`[${entries.map(pairJson).join(',')}]`, index);
    }
    if (key === '') throw new HttpError(400, 'Missing key name');
    const entry = store.get(key);
    if (entry === undefined) return notFound(index);
    if (req.query.has('raw')) return { body: undefined, index, raw: entry.value };
    return json(`[${pairJson(entry)}]`, index);
  }, { index: indexOf, exact: true });

  api.route('PUT', '/v1/kv/*', async (req) => {
    const store = kv();
    refuseConsensus(req.query, ['cas', 'acquire', 'release']);
    const key = req.params[0] ?? '';
    if (key === '') throw new HttpError(400, 'Missing key name');
    const flags = req.query.get('flags');
    if (flags !== null && !/^\d{1,20}$/.test(flags)) throw new HttpError(400, 'Invalid flags: must be an unsigned 64-bit integer');
    const value = await req.raw();
    store.put(key, value, flags === null ? {} : { flags: BigInt(flags) });
    return { body: true };
  });

  api.route('DELETE', '/v1/kv/*', (req) => {
    const store = kv();
    refuseConsensus(req.query, ['cas']);
    const key = req.params[0] ?? '';
    const recurse = flag(req.query, 'recurse');
    if (key === '' && !recurse) throw new HttpError(400, 'Missing key name');
    if (key === '') for (const e of store.list('')) store.delete(e.key);
    else store.delete(key, { recurse });
    return { body: true };
  });

  const refuse = (what: string) => (): Reply => {
    throw new HttpError(400, `${what} ${EVENTUAL}`);
  };
  for (const method of ['GET', 'PUT', 'DELETE'] as const) {
    api.route(method, '/v1/txn', refuse('a transaction'), { write: false });
    api.route(method, '/v1/session/*', refuse('a session'), { write: false });
  }
}

function refuseConsensus(query: URLSearchParams, params: readonly string[]): void {
  const p = params.find((name) => query.has(name));
  if (p !== undefined) throw new HttpError(400, `?${p} ${EVENTUAL} (last write wins)`);
}

function notFound(index: number): Reply {
  return { body: undefined, index, status: 404 };
}

function json(text: string, index: number): Reply {
  return { body: undefined, index, json: text };
}

/** Consul's KVPair, written by hand: Flags is a uint64, past what a JSON number in JavaScript holds exactly. */
function pairJson(e: KvEntry): string {
  const value = e.value.length === 0 ? 'null' : JSON.stringify(Buffer.from(e.value).toString('base64'));
  return `{"LockIndex":0,"Key":${JSON.stringify(e.key)},"Flags":${e.flags.toString()},"Value":${value},"CreateIndex":${e.createIndex},"ModifyIndex":${e.modifyIndex}}`;
}
