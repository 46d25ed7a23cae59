/**
 * A room's channel on a running member (app-channels.ts in the core): what the key-value store,
 * events and queries send and hear, sealed with the member's own messages.
 */
import type { AppHandler } from '../core/app-channels.js';
import type { Membership } from '../core/membership.js';

export type { AppHandler } from '../core/app-channels.js';

export interface AppChannel {
  /** Largest payload of a datagram (gossip included), and of a stream request or answer. */
  readonly datagramBytesMax: number;
  readonly streamBytesMax: number;
  /** Sets what hears this channel (undefined: nothing); an answer to a `request` goes back on its stream. */
  onMessage(handler: AppHandler | undefined): void;
  /** Gossips `payload` to every member; a later one under the same `key` replaces it while queued. */
  broadcast(key: string, payload: Uint8Array): void;
  /** Sends `payload` to one address: a datagram, or (`stream`) a request whose answer comes as a `reply`. */
  send(addr: string, payload: Uint8Array, stream: boolean): void;
}

export function appChannel(core: Membership, input: (apply: (nowMs: number) => void) => void, channel: number): AppChannel {
  return {
    datagramBytesMax: core.appDatagramBytesMax,
    streamBytesMax: core.appStreamBytesMax,
    onMessage: (handler) => core.onApp(channel, handler),
    broadcast: (key, payload) => input((now) => core.broadcastApp(now, channel, key, payload)),
    send: (addr, payload, stream) => input((now) => core.sendApp(now, addr, channel, payload, stream)),
  };
}
