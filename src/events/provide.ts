/**
 * Wires start() option `events` to this folder (every member runs the room unless `events:
 * false`), and gives Grapevine `fire` and the `user-event` event by declaration merging: the
 * runtime imports no room, and room.ts loads only when a member starts.
 */
import { Grapevine, InvalidStateError, provideExtension } from '../runtime/index.js';
import type { FireOptions, UserEvent } from './event.js';
import { rooms } from './rooms.js';

declare module '../runtime/index.js' {
  interface Grapevine {
    /**
     * Fires a user event to every member (serf's user events, Consul's /v1/event/fire): gossiped,
     * delivered at most once per member as `user-event` where the filters match (this member
     * too), best effort, with no order across origins. Name, payload and filters together at
     * most 512 bytes (OversizedError); InvalidOptionError for a bad name or filter;
     * InvalidStateError when this member runs no events room (`events: false`) or is closed.
     */
    fire(name: string, payload?: Uint8Array | string, options?: FireOptions): UserEvent;
  }
  interface GrapevineEvents {
    /** A user event fired here or elsewhere whose filters this member matches; each at most once. */
    'user-event': [event: UserEvent];
  }
  interface GrapevineOptions {
    /** User events (`fire`, `user-event`): on unless `false`. */
    events?: boolean;
  }
}

export function provideEvents(): void {
  provideExtension('events', async () => (await import('./room.js')).serveEvents, true);
  if (Object.getOwnPropertyDescriptor(Grapevine.prototype, 'fire') !== undefined) return;
  Object.defineProperty(Grapevine.prototype, 'fire', {
    configurable: true,
    writable: true,
    value: function fire(this: Grapevine, name: string, payload?: Uint8Array | string, options?: FireOptions): UserEvent {
      const room = rooms.of(this);
      if (room === undefined) throw new InvalidStateError('this member runs no user events (started with events: false, or closed)');
      return room.fire(name, payload, options);
    },
  });
}
