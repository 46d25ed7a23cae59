/**
 * Channels for rooms built on the core (the key-value store, user events, queries). A room takes
 * a channel number and sends its own payloads: gossiped (piggybacked from the broadcast queue,
 * each sent its retransmit count, as the protocol's own broadcasts), to one address in a
 * datagram, or as a stream request whose answer comes back on that stream. What arrives is
 * handed to the channel's handler at once, inside the input that brought it, so a stream
 * request is answered in the same turn. Sealed and replay-checked like every other message;
 * the core never looks inside a payload.
 */
import type { Context } from './context.js';
import { InvalidOptionError, OversizedError } from './errors.js';
import { type AppKind, AppKind as Kind, buildPacket, encodeMessage, type AppMessage, MessageType } from './wire.js';

/**
 * What a room hears: `kind` says how it came, `from` where (for a stream request, the
 * connecting socket, not the sender's gossip address). The answer to a `request` is sent back on its
 * stream (undefined: none); for anything else the return value is ignored.
 */
export type AppHandler = (nowMs: number, from: string, payload: Uint8Array, kind: 'datagram' | 'request' | 'reply') => Uint8Array | undefined;

/** Channel numbers of the rooms this package has. Part of the protocol: ONLY APPEND. */
export const APP_CHANNELS = { kv: 1, events: 2, queries: 3, coordinates: 4 } as const;

const KIND_NAMES = ['datagram', 'request', 'reply'] as const;
/** Room payloads in a datagram leave this much of it for the header, the message's framing and other gossip. */
const DATAGRAM_FRAMING_BYTES = 64;

export class AppChannels {
  private readonly handlers = new Map<number, AppHandler>();

  constructor(private readonly ctx: Context) {}

  /** Largest payload that travels in a datagram (gossip included). */
  get datagramBytesMax(): number {
    return this.ctx.packetBytesMax - DATAGRAM_FRAMING_BYTES;
  }

  /** Largest payload of a stream request or answer. */
  get streamBytesMax(): number {
    return this.ctx.config.streamBytesMax - DATAGRAM_FRAMING_BYTES;
  }

  handle(channel: number, handler: AppHandler | undefined): void {
    checkChannel(channel);
    if (handler === undefined) this.handlers.delete(channel);
    else this.handlers.set(channel, handler);
  }

  /** Gossips `payload`; a later broadcast under the same `key` replaces it in the queue. */
  broadcast(channel: number, key: string, payload: Uint8Array): void {
    const bytes = this.encode(channel, payload, Kind.Datagram, this.datagramBytesMax);
    this.ctx.broadcasts.enqueue(`\0app ${channel} ${key}`, bytes);
  }

  /** Sends `payload` to `addr`: in one datagram, or (`stream`) as a request whose answer reaches the handler as a `reply`. */
  send(addr: string, channel: number, payload: Uint8Array, stream: boolean): void {
    if (stream) this.ctx.sendStream(addr, buildPacket([this.encode(channel, payload, Kind.Request, this.streamBytesMax)]), 'state');
    else this.ctx.send({ addr, bytes: buildPacket([this.encode(channel, payload, Kind.Datagram, this.datagramBytesMax)]), stream: false });
  }

  /** An app message arrived; returns the encoded answer to a stream request, if the room gives one. */
  onMessage(nowMs: number, from: string, m: AppMessage): Uint8Array | undefined {
    const handler = this.handlers.get(m.channel);
    if (handler === undefined) {
      this.ctx.drop(from, 'unknown-app-channel', `channel ${m.channel}`);
      return undefined;
    }
    let answer: Uint8Array | undefined;
    try {
      answer = handler(nowMs, from, m.payload, KIND_NAMES[m.kind]);
    } catch (e) {
      // A room's bug must not become an exception out of handle*: the input is dropped, as bad input is.
      this.ctx.drop(from, 'app-handler-threw', `channel ${m.channel}: ${(e as Error).message}`);
      return undefined;
    }
    if (m.kind !== Kind.Request || answer === undefined) return undefined;
    if (answer.length > this.streamBytesMax) {
      this.ctx.drop(from, 'app-answer-oversized', `channel ${m.channel}: ${answer.length} bytes`);
      return undefined;
    }
    return buildPacket([encodeMessage({ type: MessageType.App, channel: m.channel, payload: answer, kind: Kind.Reply })]);
  }

  private encode(channel: number, payload: Uint8Array, kind: AppKind, max: number): Uint8Array {
    checkChannel(channel);
    if (!(payload instanceof Uint8Array)) throw new InvalidOptionError('payload', 'must be a Uint8Array');
    if (payload.length > max) throw new OversizedError(`channel ${channel} payload`, payload.length, max);
    return encodeMessage({ type: MessageType.App, channel, payload, kind });
  }
}

function checkChannel(channel: number): void {
  if (!Number.isInteger(channel) || channel < 0 || channel > 255) throw new InvalidOptionError('channel', 'must be an integer in 0..255');
}
