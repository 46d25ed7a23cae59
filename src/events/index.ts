/**
 * User events (serf's, as Consul's /v1/event): `gv.fire(name, payload, { node, service, tag })`
 * gossiped to every member, `user-event` where the filters match. Every member runs it unless
 * started with `events: false`; room.ts loads only then.
 */
export { EVENT_BYTES_MAX } from './event.js';
export type { FireOptions, UserEvent } from './event.js';
export { provideEvents } from './provide.js';
