/**
 * Which member runs which events room: filled by the room's starter, read by `gv.fire` (provide.ts),
 * so the package entry can give Grapevine its method without loading room.ts.
 */
import { Rooms } from '../runtime/index.js';
import type { FireOptions, UserEvent } from './event.js';

/** What `gv.fire` asks of a running room. */
export interface EventsRoom {
  fire(name: string, payload: Uint8Array | string | undefined, options: FireOptions | undefined): UserEvent;
}

export const rooms = new Rooms<EventsRoom>();
