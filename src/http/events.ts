/**
 * Consul's /v1/event endpoints over this member's user events (src/events/, through `gv.fire`
 * and `user-event`): PUT /v1/event/fire/:name (`?node=`, `?service=`, `?tag=`; the body is the
 * payload) answers the event; GET /v1/event/list (`?name=`) the last EVENTS_KEPT events this
 * member delivered since its HTTP API started, oldest first, blocking on `?index=` as Consul's:
 * the index is the last listed event's ID folded to 64 bits (agent/event_endpoint.go
 * uuidToUint64), 1 when there is none, and not monotonic, so a wait ends when it differs.
 */
import type { Grapevine, GrapevineEvents } from '../runtime/index.js';
import { type Api, HttpError } from './routes.js';

type UserEvent = GrapevineEvents['user-event'][0];

/** Events kept for /v1/event/list: Consul's agent keeps the last 256 (agent.go eventBuf). */
export const EVENTS_KEPT = 256;

/** An event as Consul's JSON shows it (api/event.go UserEvent): Payload base64, null when empty, as Go's []byte. */
function consulEvent(e: UserEvent): Record<string, unknown> {
  return {
    ID: e.id, Name: e.name, Payload: e.payload.length === 0 ? null : Buffer.from(e.payload).toString('base64'),
    NodeFilter: e.nodeFilter, ServiceFilter: e.serviceFilter, TagFilter: e.tagFilter, Version: 1, LTime: e.ltime,
  };
}

/**
 * Consul's index for an event ID: the UUID's two 64-bit halves XORed (uuidToUint64, which the Go
 * client's Event().IDToIndex repeats). Events grapevine fires have it below 2^53 (exact here);
 * another ID keeps its low 53 bits.
 */
export function uuidToIndex(id: string): number {
  const hex = id.replace(/-/g, '');
  if (!/^[0-9a-fA-F]{32}$/.test(hex)) return 1;
  const x = BigInt(`0x${hex.slice(0, 16)}`) ^ BigInt(`0x${hex.slice(16)}`);
  return Number(x & BigInt(Number.MAX_SAFE_INTEGER)) || 1;
}

/** Adds the event routes. Events are recorded from now on, while the API runs. */
export function eventEndpoints(api: Api): void {
  const gv: Grapevine = api.gv;
  const recent: UserEvent[] = [];
  const onEvent = (e: UserEvent): void => {
    recent.push(e);
    if (recent.length > EVENTS_KEPT) recent.shift();
    api.wake();
  };
  gv.on('user-event', onEvent);
  api.onClose(() => gv.off('user-event', onEvent));

  const listed = (query: URLSearchParams): UserEvent[] => {
    const name = query.get('name') ?? '';
    return name === '' ? recent.slice() : recent.filter((e) => e.name === name);
  };
  const indexOf = (_params: string[], query: URLSearchParams): number => {
    const last = listed(query).at(-1);
    return last === undefined ? 1 : uuidToIndex(last.id);
  };

  api.route('PUT', '/v1/event/fire/', () => {
    throw new HttpError(400, 'Missing name');
  });
  api.route('PUT', '/v1/event/fire/:name', async (req) => {
    const payload = await req.raw();
    const filter = (key: string): string | undefined => req.query.get(key) || undefined;
    const e = gv.fire(req.params[0] as string, payload, { node: filter('node'), service: filter('service'), tag: filter('tag') });
    return { body: consulEvent(e) };
  });
  // Blocks while `?index=` is the current index (any other, 0 included, is answered at once), as Consul's EventList.
  api.route('GET', '/v1/event/list', (req) => ({ body: listed(req.query).map(consulEvent) }), { index: indexOf, exact: true });
}
