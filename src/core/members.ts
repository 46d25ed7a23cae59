/**
 * What a node knows about one member, and the rules for combining two such facts.
 *
 * A member's entry is two independent last-writer-wins registers, each ordered totally so that
 * merging is commutative, associative and idempotent (a join semilattice), which is what lets
 * every node reach the same table whatever order gossip arrives in:
 *
 *  - liveness (incarnation, state): a higher incarnation wins; at equal incarnation
 *    left > dead > suspect > alive (SWIM's precedence, with a graceful leave above a death);
 *  - identity (aliveIncarnation, version, addr, digest): what the newest alive message said about
 *    where the member is and which record (the registry's opaque bytes) it carries. A record write bumps the version
 *    within an incarnation. Ties, which only a name conflict can produce, break on the address and
 *    then the digest so every node picks the same one.
 *
 * Suspect, dead and left messages carry no address, so a node can learn a member's liveness
 * before its identity; such an entry stays hidden from users until an alive message names it.
 */
import { MemberState } from './wire.js';

export type MemberStateName = 'alive' | 'suspect' | 'dead' | 'left';

export const STATE_NAMES: readonly MemberStateName[] = ['alive', 'suspect', 'dead', 'left'];

/** A member as reported to users. */
export interface MemberInfo {
  name: string;
  addr: string;
  /** The newest record (opaque bytes) this node holds; it can trail `version` while a large one is being pulled. */
  record: Uint8Array;
  /** Record version: bumped by the member on every write, starting again in a new incarnation. */
  version: number;
  incarnation: number;
  state: MemberStateName;
  /** Core time of the last state change, as seen by this node. */
  stateChangeMs: number;
}

/** Alive or suspect: still a member, probed and counted in the cluster size. */
export function isLive(state: MemberState): boolean {
  return state === MemberState.Alive || state === MemberState.Suspect;
}

/**
 * How far one message may move a known member's incarnation past the highest this node holds
 * for it. Legitimate jumps are refutations this node missed (one per refuted accusation), far
 * fewer than this; a forged claim beyond it is refused, so no single message can push a member
 * towards the end of the counter, where it could no longer refute (one Suspect(B, 2^32 - 1) kept
 * B dead for good when incarnations were 32-bit and unbounded per message).
 */
export const INCARNATION_JUMP_MAX = 2 ** 20;
/** The highest incarnation accepted for a member this node does not know yet (2^32: leaves 2^53 - 2^32 of headroom). */
export const FIRST_SIGHT_INCARNATION_MAX = 2 ** 32;

/** True if liveness (incB, stateB) is strictly newer than (incA, stateA). */
export function livenessNewer(incA: number, stateA: MemberState, incB: number, stateB: MemberState): boolean {
  return incB > incA || (incB === incA && stateB > stateA);
}

/** What an alive message says about where a member is and which record it carries. */
export interface Identity {
  /** The incarnation of the alive message; -1 before any named the member. */
  aliveIncarnation: number;
  version: number;
  addr: string | undefined;
  digest: Uint8Array;
}

/** True if identity b is strictly newer than identity a. */
export function identityNewer(a: Identity, b: Identity): boolean {
  if (b.aliveIncarnation !== a.aliveIncarnation) return b.aliveIncarnation > a.aliveIncarnation;
  if (b.version !== a.version) return b.version > a.version;
  const byAddr = compareStrings(a.addr ?? '', b.addr ?? '');
  if (byAddr !== 0) return byAddr < 0;
  return compareBytes(a.digest, b.digest) < 0;
}

function compareStrings(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

export function compareBytes(a: Uint8Array, b: Uint8Array): number {
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i++) {
    const d = (a[i] as number) - (b[i] as number);
    if (d !== 0) return d;
  }
  return a.length - b.length;
}

export function bytesEqual(a: Uint8Array, b: Uint8Array): boolean {
  return a.length === b.length && compareBytes(a, b) === 0;
}
