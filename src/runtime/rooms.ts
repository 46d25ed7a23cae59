/**
 * Which member runs which instance of a room: filled by the room's starter, read by the methods
 * the room gives Grapevine (gv.kv, gv.fire, gv.query), so the package entry can add those without
 * loading the room itself.
 */
import type { Grapevine } from './grapevine.js';

export class Rooms<T> {
  private readonly byMember = new WeakMap<Grapevine, T>();

  of(member: Grapevine): T | undefined {
    return this.byMember.get(member);
  }

  /** Sets (or, undefined, forgets) `member`'s room. */
  set(member: Grapevine, room: T | undefined): void {
    if (room === undefined) this.byMember.delete(member);
    else this.byMember.set(member, room);
  }
}
