/**
 * The user events room, one per member (serf's user events, as Consul uses them).
 *
 * Theory of operation. Each member keeps a Lamport clock for events (serf's eventClock): firing
 * stamps the event with the clock's time and then increments it; hearing an event or a peer's
 * clock witnesses that time (the clock moves to one past it, if behind). An event is gossiped on
 * APP_CHANNELS.events from the broadcast queue, and every member that hears it for the first
 * time gossips it again (serf's handleUserEvent returns "rebroadcast"), so it spreads
 * epidemically and reaches members the first sender's own retransmissions missed.
 *
 * De-duplication is serf's eventBuffer: a ring of EVENT_BUFFER_LTIMES Lamport times, each with
 * the IDs of the events seen at it. An event already in its slot is a duplicate; one older than
 * the clock by more than the ring is dropped as too old (it could not be told from one already
 * delivered). So each member delivers each event at most once while it runs.
 *
 * Filters are evaluated where the event lands, as Consul's shouldProcessUserEvent does: every
 * member relays every event, and delivers it (`user-event`) only if its name matches the node
 * filter and, with a service filter, one of its own instances' service names matches (and, with
 * a tag filter, one of that instance's tags). Patterns come from peers, so they run on the
 * linear-time RE2 engine; one that does not compile delivers nowhere.
 *
 * Gossip is best effort: a broadcast's few sends also ride on probes and their acks, so in a
 * small cluster one member can miss every copy. serf repairs that in push-pull, which carries
 * its event clock and recent events; here each member asks one other every SYNC_MS (scaled as
 * memberlist scales push-pull past 32 members), and the first members it sees join, over a
 * stream: "my clock, and the IDs of the recent events I hold"; the answer is the answerer's
 * clock and the recent events the asker lacks, handled as if gossiped (not passed on). So a
 * member that (re)joined fires at the cluster's time, not at 0 (where it would be too old
 * everywhere), and the first answer from a cluster ahead of it sets its minimum time, so it does
 * not deliver the cluster's history on joining (serf's eventJoinIgnore and eventMinTime).
 */
import { randomBytes, randomInt } from 'node:crypto';
import type { Member } from '../registry/index.js';
import {
  APP_CHANNELS, type AppChannel, type Extension, type ExtensionStarter, type Grapevine, InvalidOptionError, InvalidStateError, OversizedError,
} from '../runtime/index.js';
import {
  checkFire, compileFilter, decodeMessage, encodeEvent, encodeMissing, encodeSync, EVENT_BUFFER_LTIMES, EVENTS_PER_LTIME_MAX, type FireOptions, newEventId, type UserEvent,
} from './event.js';
import { type EventsRoom, rooms } from './rooms.js';

/** How often a member syncs with one other, up to 32 members (then scaled as memberlist scales push-pull). Ours: a missed event arrives within seconds. */
const SYNC_MS = 5_000;
/** Members synced with as they are first seen joining. */
const SYNCS_AT_JOIN = 3;
/** Recent events kept whole, offered in syncs. */
const RECENT_EVENTS_KEPT = 64;
/** A sync answer's size at most. */
const SYNC_ANSWER_BYTES_MAX = 64 * 1024;

interface Slot {
  ltime: number;
  ids: Set<string>;
}

class Events implements EventsRoom, Extension {
  private clock = 0;
  private readonly slots: (Slot | undefined)[] = new Array<Slot | undefined>(EVENT_BUFFER_LTIMES);
  private readonly channel: AppChannel;
  private readonly timer: NodeJS.Timeout;
  private closed = false;
  /** Events older than this are not delivered: set from the first sync with a cluster ahead of this member (serf's eventMinTime). */
  private minTime = 0;
  private answered = false;
  private syncsAtJoin = 0;
  private nextSyncMs = 0;
  /** The last RECENT_EVENTS_KEPT events heard, whole, oldest first. */
  private readonly recent: { id: string; bytes: Uint8Array }[] = [];
  readonly stats = {
    /** Events fired here. */
    fired: 0,
    /** Events delivered here (fired here included): `user-event` emitted. */
    delivered: 0,
    /** Events new here that the filters kept from this member (relayed all the same). */
    filtered: 0,
    /** Events heard again. */
    duplicates: 0,
    /** Events older than the de-duplication buffer reaches: dropped. */
    tooOld: 0,
    /** Messages on the channel that were not a valid event, sync or sync answer (or came the wrong way). */
    malformed: 0,
    /** Syncs asked, answered, and answers heard; events the answers brought that were new here. */
    syncsAsked: 0,
    syncsAnswered: 0,
    syncsHeard: 0,
    syncedEvents: 0,
  };

  constructor(private readonly member: Grapevine) {
    this.channel = member.channel(APP_CHANNELS.events);
    this.channel.onMessage((_nowMs, _from, payload, kind) => this.onMessage(payload, kind));
    member.on('joined', this.onJoined);
    this.timer = setInterval(() => this.syncTick(), 1_000);
    this.timer.unref();
  }

  fire(name: string, payload: Uint8Array | string | undefined, options: FireOptions | undefined): UserEvent {
    if (this.closed) throw new InvalidStateError('fire after leave or close');
    const checked = checkFire(name, payload, options);
    const event: UserEvent = {
      id: newEventId((n) => new Uint8Array(randomBytes(n))), name: checked.name, payload: new Uint8Array(checked.payload), ltime: this.clock, origin: this.member.name,
      nodeFilter: checked.filters.node, serviceFilter: checked.filters.service, tagFilter: checked.filters.tag,
    };
    const bytes = encodeEvent(event);
    if (bytes.length > this.channel.datagramBytesMax) throw new OversizedError('user event (encoded, with the origin name)', bytes.length, this.channel.datagramBytesMax);
    this.clock = Math.min(this.clock + 1, Number.MAX_SAFE_INTEGER);
    this.stats.fired++;
    this.heard(event, bytes);
    this.channel.broadcast(`${event.ltime} ${event.id}`, bytes);
    return event;
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    clearInterval(this.timer);
    this.member.off('joined', this.onJoined);
    this.channel.onMessage(undefined);
    rooms.set(this.member, undefined);
  }

  private onMessage(payload: Uint8Array, kind: string): Uint8Array | undefined {
    const m = decodeMessage(payload);
    const expected = typeof m === 'string' ? undefined : { event: 'datagram', sync: 'request', missing: 'reply' }[m.kind];
    if (typeof m === 'string' || kind !== expected) {
      this.stats.malformed++;
      return undefined;
    }
    if (m.kind === 'event') {
      this.witness(m.event.ltime);
      // New here: pass it on, so it reaches everyone (serf's rebroadcast), whatever the filters say.
      if (this.heard(m.event, payload)) {
        try {
          this.channel.broadcast(`${m.event.ltime} ${m.event.id}`, payload);
        } catch {
          this.stats.malformed++; // larger than this member's datagrams (a peer configured otherwise): not relayed
        }
      }
      return undefined;
    }
    if (m.kind === 'sync') {
      this.witness(m.ltime);
      this.stats.syncsAnswered++;
      const missing: Uint8Array[] = [];
      let size = 12;
      for (let i = this.recent.length - 1; i >= 0; i--) {
        const r = this.recent[i] as { id: string; bytes: Uint8Array };
        if (m.ids.has(r.id)) continue;
        if (size + 2 + r.bytes.length > Math.min(SYNC_ANSWER_BYTES_MAX, this.channel.streamBytesMax)) break;
        size += 2 + r.bytes.length;
        missing.push(r.bytes);
      }
      return encodeMissing(this.clock, missing.reverse());
    }
    this.stats.syncsHeard++;
    // The first answer from a cluster ahead of this member: what it holds is history here.
    if (!this.answered && m.ltime > this.clock) this.minTime = m.ltime;
    this.answered = true;
    this.witness(m.ltime);
    for (const { event, bytes } of m.events) {
      this.witness(event.ltime);
      if (this.heard(event, bytes)) this.stats.syncedEvents++;
    }
    return undefined;
  }

  /** serf's handleUserEvent: false for an event too old or already seen; else remembers it, delivers it if the filters hold, and says it is new. */
  private heard(e: UserEvent, bytes: Uint8Array): boolean {
    const now = this.clock;
    if (e.ltime < this.minTime || (now > EVENT_BUFFER_LTIMES && e.ltime < now - EVENT_BUFFER_LTIMES)) {
      this.stats.tooOld++;
      return false;
    }
    const at = e.ltime % EVENT_BUFFER_LTIMES;
    let slot = this.slots[at];
    if (slot !== undefined && slot.ltime === e.ltime) {
      if (slot.ids.has(e.id)) {
        this.stats.duplicates++;
        return false;
      }
      if (slot.ids.size >= EVENTS_PER_LTIME_MAX) {
        this.stats.tooOld++;
        return false;
      }
    } else {
      slot = { ltime: e.ltime, ids: new Set() };
      this.slots[at] = slot;
    }
    slot.ids.add(e.id);
    this.recent.push({ id: e.id, bytes });
    if (this.recent.length > RECENT_EVENTS_KEPT) this.recent.shift();
    if (!this.matches(e)) {
      this.stats.filtered++;
      return true;
    }
    this.stats.delivered++;
    // Not inside the input that brought it: a listener that throws must not throw out of the core.
    queueMicrotask(() => this.member.emit('user-event', e));
    return true;
  }

  /** Consul's shouldProcessUserEvent (agent/user_event.go), over this member's own instances. */
  private matches(e: UserEvent): boolean {
    const never = (): never => {
      throw new Error('filter');
    };
    try {
      if (e.nodeFilter !== '' && !compileFilter(e.nodeFilter, never)(this.member.name)) return false;
      if (e.serviceFilter === '') return true;
      const service = compileFilter(e.serviceFilter, never);
      const tag = e.tagFilter === '' ? undefined : compileFilter(e.tagFilter, never);
      return this.member.catalog.nodeInstances(this.member.name).some((i) => i.external === undefined && service(i.service) && (tag === undefined || i.tags.some(tag)));
    } catch {
      return false; // a pattern that does not compile (Consul logs it and skips the event)
    }
  }

  /** serf's LamportClock.Witness: at least one past what a peer has seen. */
  private witness(ltime: number): void {
    if (ltime >= this.clock) this.clock = Math.min(ltime + 1, Number.MAX_SAFE_INTEGER);
  }

  private readonly onJoined = (m: Member): void => {
    if (m.name === this.member.name || this.syncsAtJoin >= SYNCS_AT_JOIN) return;
    this.syncsAtJoin++;
    this.sync(m.addr);
  };

  /** Every second: time for a sync with a random live member? (The interval grows with the cluster, as memberlist's push-pull.) */
  private syncTick(): void {
    const nowMs = performance.now();
    if (nowMs < this.nextSyncMs) return;
    const others = this.member.members().filter((m) => m.state === 'alive' && m.name !== this.member.name);
    const live = others.length + 1;
    this.nextSyncMs = nowMs + (live <= 32 ? SYNC_MS : SYNC_MS * (Math.ceil(Math.log2(live) - 5) + 1));
    if (others.length > 0) this.sync((others[randomInt(others.length)] as Member).addr);
  }

  private sync(addr: string): void {
    if (this.closed) return;
    this.stats.syncsAsked++;
    try {
      this.channel.send(addr, encodeSync(this.clock, this.recent.map((r) => r.id)), true);
    } catch {
      // closing: the member takes no more input
    }
  }
}

function check(value: unknown): void {
  if (value !== true && value !== false && value !== undefined) throw new InvalidOptionError('events', 'must be true or false');
}

export const serveEvents: ExtensionStarter = Object.assign(async (member: Grapevine, value: unknown): Promise<Extension> => {
  check(value);
  const room = new Events(member);
  rooms.set(member, room);
  return room;
}, { check });
