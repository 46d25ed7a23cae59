/**
 * The member table as columns indexed by slot. One object per member cost about 200 bytes
 * (a 15-field object, its map entry, two list slots); columns of typed arrays and shared
 * strings cost under 100, which is what lets one process simulate 10,000 members that each know
 * all the others (10^8 entries). Slot 0 is the local member; removing a member moves the last
 * slot into the hole, so slots stay dense and a random slot is a random member.
 */
import { EMPTY_BYTES, EMPTY_DIGEST, type MemberState, recordDigest } from './wire.js';

/** A member's position in the table's columns; it can change when another member is removed. */
export type Slot = number;
/** The local member's slot. */
export const SELF: Slot = 0;

/** A member's record as held here: immutable, replaced on change; most members share EMPTY_HELD_RECORD. */
export interface HeldRecord {
  /** The newest record bytes held; while `pending` they are older than `digest` names. */
  readonly bytes: Uint8Array;
  readonly digest: Uint8Array;
  /** The size of the record `digest` names (of `bytes` unless pending). */
  readonly size: number;
  /** Announced by digest, not yet pulled. */
  readonly pending: boolean;
}

export const EMPTY_HELD_RECORD: HeldRecord = Object.freeze({ bytes: EMPTY_BYTES, digest: EMPTY_DIGEST, size: 0, pending: false });

/** A record as held once its bytes are here; `digest` when already known. */
export function heldRecord(bytes: Uint8Array, digest?: Uint8Array): HeldRecord {
  if (bytes.length === 0) return EMPTY_HELD_RECORD;
  return { bytes, digest: digest ?? recordDigest(bytes), size: bytes.length, pending: false };
}

/** `aliveIncarnation` before any alive message named the member. */
export const NO_IDENTITY = -1;

export class MemberTable {
  private readonly index = new Map<string, number>();
  size = 0;
  names: string[] = [];
  /** Undefined until an alive message names the member's address. */
  addrs: (string | undefined)[] = [];
  records: HeldRecord[] = [];
  incarnation = new Float64Array(16);
  /** Incarnation of the alive message the identity came from, or NO_IDENTITY. */
  aliveIncarnation = new Float64Array(16);
  version = new Uint32Array(16);
  state = new Uint8Array(16);
  stateChangeMs = new Float64Array(16);
  /**
   * Bumped by every change to what a push-pull carries (names, addresses, records, incarnations,
   * versions, states): `add` and `remove` here, `changed()` at each column write elsewhere.
   */
  revision = 0;

  changed(): void {
    this.revision++;
  }

  slotOf(name: string): number {
    return this.index.get(name) ?? -1;
  }

  /** Appends a member with no identity yet; returns its slot. */
  add(name: string, incarnation: number, state: MemberState, nowMs: number): number {
    const s = this.size;
    if (s === this.state.length) this.grow(s * 2);
    this.index.set(name, s);
    this.names.push(name);
    this.addrs.push(undefined);
    this.records.push(EMPTY_HELD_RECORD);
    this.incarnation[s] = incarnation;
    this.aliveIncarnation[s] = NO_IDENTITY;
    this.version[s] = 0;
    this.state[s] = state;
    this.stateChangeMs[s] = nowMs;
    this.size++;
    this.revision++;
    return s;
  }

  /** Makes room for `extra` more members at once (a large push-pull), so the columns grow once. */
  reserve(extra: number): void {
    if (this.size + extra > this.state.length) this.grow(this.size + extra);
  }

  /** Removes the member at `slot` (never 0) by moving the last member into it. Returns the moved member's old slot, or -1. */
  remove(slot: number): number {
    const last = this.size - 1;
    this.index.delete(this.names[slot] as string);
    if (slot !== last) {
      this.index.set(this.names[last] as string, slot);
      this.names[slot] = this.names[last] as string;
      this.addrs[slot] = this.addrs[last];
      this.records[slot] = this.records[last] as HeldRecord;
      this.incarnation[slot] = this.incarnation[last] as number;
      this.aliveIncarnation[slot] = this.aliveIncarnation[last] as number;
      this.version[slot] = this.version[last] as number;
      this.state[slot] = this.state[last] as number;
      this.stateChangeMs[slot] = this.stateChangeMs[last] as number;
    }
    this.names.pop();
    this.addrs.pop();
    this.records.pop();
    this.size--;
    this.revision++;
    return slot === last ? -1 : last;
  }

  private grow(capacity: number): void {
    const grown = <T extends Uint32Array | Float64Array | Uint8Array>(old: T, make: (n: number) => T): T => {
      const next = make(capacity);
      next.set(old.subarray(0, this.size) as never);
      return next;
    };
    this.incarnation = grown(this.incarnation, (n) => new Float64Array(n));
    this.aliveIncarnation = grown(this.aliveIncarnation, (n) => new Float64Array(n));
    this.version = grown(this.version, (n) => new Uint32Array(n));
    this.state = grown(this.state, (n) => new Uint8Array(n));
    this.stateChangeMs = grown(this.stateChangeMs, (n) => new Float64Array(n));
  }
}
