/**
 * Table upkeep: dead and left members stay as tombstones for `tombstoneReapMs`, so stale gossip
 * cannot revive them, and are then removed. Tombstones are kept in the order they were made,
 * so reaping looks only at the ones due.
 */
import type { Context } from './context.js';
import { SELF, type Slot } from './member-table.js';
import { isLive } from './members.js';
import type { ProbeRound } from './probe-round.js';
import type { RecordPulls } from './record-pull.js';

export class Upkeep {
  /** Members that became dead or left, oldest first, with the time they did. */
  private readonly tombstones: { name: string; sinceMs: number }[] = [];
  private head = 0;

  constructor(
    private readonly ctx: Context,
    private readonly round: ProbeRound,
    private readonly pulls: RecordPulls,
  ) {}

  /** `name` became dead or left at `sinceMs`. */
  tombstone(name: string, sinceMs: number): void {
    this.tombstones.push({ name, sinceMs });
  }

  /** Removes dead and left members whose tombstone period has passed. */
  reap(now: number): void {
    const ctx = this.ctx;
    const reapMs = ctx.config.tombstoneReapMs;
    const list = this.tombstones;
    const t = ctx.table;
    while (this.head < list.length) {
      const { name, sinceMs } = list[this.head] as { name: string; sinceMs: number };
      if (now - sinceMs < reapMs) break;
      this.head++;
      // Skip records of members that came back (or were reaped) since.
      const s = t.slotOf(name);
      if (s > SELF && !isLive(ctx.stateOf(s)) && (t.stateChangeMs[s] as number) <= sinceMs) this.remove(s);
    }
    if (this.head > 1_024 && this.head * 2 > list.length) {
      list.splice(0, this.head);
      this.head = 0;
    }
  }

  private remove(s: Slot): void {
    const ctx = this.ctx;
    const name = ctx.table.names[s] as string;
    const moved = ctx.table.remove(s);
    // The member that filled the hole changed slot: the probe round must follow it.
    this.round.removed(s, moved);
    ctx.broadcasts.remove(name);
    this.pulls.forget(name);
  }
}
