/**
 * Protocol invariants, checked on any simulation while it runs (tests, and `npm run sim --
 * --check`). Safety first, as TigerBeetle's VOPR does: these must hold at every moment, faults
 * or not. Liveness (`converged`) holds only once faults have healed and the cluster settled.
 *
 * Safety, per observer process (a restart is a new observer):
 *  - liveness-monotonic: a member's (incarnation, state) never goes back, in the order of
 *    members.ts (higher incarnation, then left > dead > suspect > alive). The one exception is
 *    a dead or left member whose tombstone was reaped and who is learned again ('joined').
 *  - identity-monotonic: while a member is alive, its (incarnation, record version) never goes
 *    back: an old record never overwrites a newer one. Same exception.
 *  - self-never-condemned: a running member never holds itself suspect or dead (it refutes).
 *  - no-lost-events: no core discarded events because its driver fell behind.
 */
import type { MembershipEvent } from '../src/core/context.js';
import type { Membership } from '../src/core/membership.js';
import type { MemberStateName } from '../src/core/members.js';
import type { SimNode, Simulation } from './engine.js';

export interface Violation {
  atMs: number;
  invariant: 'liveness-monotonic' | 'identity-monotonic' | 'self-never-condemned' | 'no-lost-events';
  detail: string;
}

const STATE_RANK: Record<MemberStateName, number> = { alive: 0, suspect: 1, dead: 2, left: 3 };
/** Violations kept in full; later ones are only counted. */
const VIOLATIONS_KEPT = 100;

interface Seen {
  incarnation: number;
  rank: number;
  /** Version last seen while alive, at `aliveIncarnation`. */
  aliveIncarnation: number;
  version: number;
}

export class InvariantChecker {
  readonly violations: Violation[] = [];
  /** All violations, including those past VIOLATIONS_KEPT. */
  count = 0;
  /** How many times `check()` ran. */
  checks = 0;
  private readonly seen = new WeakMap<Membership, Map<string, Seen>>();
  private readonly unsubscribe: () => void;

  constructor(private readonly sim: Simulation) {
    this.unsubscribe = sim.onEvent((node, event, atMs) => this.onEvent(node, event, atMs));
  }

  get ok(): boolean {
    return this.count === 0;
  }

  /** Checks the state invariants of every running member now (events are checked as they happen). */
  check(): void {
    this.checks++;
    for (const n of this.sim.nodes.values()) {
      if (!n.up) continue;
      const self = n.core.member(n.name);
      if (self?.state === 'suspect' || self?.state === 'dead') {
        this.fail('self-never-condemned', `${n.name} holds itself ${self.state} at incarnation ${self.incarnation}`);
      }
      if (n.core.stats.eventsDropped > 0) this.fail('no-lost-events', `${n.name} dropped ${n.core.stats.eventsDropped} events`);
    }
  }

  close(): void {
    this.unsubscribe();
  }

  /** The violations in a few lines, then `replay`: the seed or command that replays the run. */
  report(replay: string): string {
    const lines = this.violations.slice(0, 10).map((v) => `  ${v.atMs} ms  ${v.invariant}: ${v.detail}`);
    if (this.count > lines.length) lines.push(`  ... ${this.count - lines.length} more`);
    return `${this.count} invariant violation(s):\n${lines.join('\n')}\nreplay with: ${replay}`;
  }

  private onEvent(node: SimNode, event: MembershipEvent, atMs: number): void {
    if (!('member' in event) || event.member.name === node.name) return;
    let table = this.seen.get(node.core);
    if (table === undefined) {
      table = new Map();
      this.seen.set(node.core, table);
    }
    const m = event.member;
    const rank = STATE_RANK[m.state];
    const before = table.get(m.name);
    const alive = m.state === 'alive';
    if (before !== undefined) {
      // Only dead and left members are reaped; one learned again starts over.
      const recreated = event.type === 'joined' && before.rank >= STATE_RANK.dead;
      if (!recreated) {
        if (m.incarnation < before.incarnation || (m.incarnation === before.incarnation && rank < before.rank)) {
          this.fail('liveness-monotonic', `${node.name} saw ${m.name} go from ${describe(before.incarnation, before.rank)} to ${describe(m.incarnation, rank)}`, atMs);
        }
        if (alive && (m.incarnation < before.aliveIncarnation || (m.incarnation === before.aliveIncarnation && m.version < before.version))) {
          this.fail('identity-monotonic', `${node.name} saw ${m.name}'s record go from (${before.aliveIncarnation}, v${before.version}) to (${m.incarnation}, v${m.version})`, atMs);
        }
      }
    }
    table.set(m.name, {
      incarnation: m.incarnation, rank,
      aliveIncarnation: alive ? m.incarnation : before?.aliveIncarnation ?? -1,
      version: alive ? m.version : before?.version ?? -1,
    });
  }

  private fail(invariant: Violation['invariant'], detail: string, atMs = this.sim.nowMs): void {
    this.count++;
    if (this.violations.length < VIOLATIONS_KEPT) this.violations.push({ atMs, invariant, detail });
  }
}

function describe(incarnation: number, rank: number): string {
  return `${Object.keys(STATE_RANK)[rank]}@${incarnation}`;
}

/** Liveness: every running member sees exactly the running members alive, and nothing else alive. */
export function converged(sim: Simulation): boolean {
  const live = sim.liveNodes().map((n) => n.name).sort();
  return sim.liveNodes().every((n) => {
    const alive = n.core.members().filter((m) => m.state === 'alive').map((m) => m.name).sort();
    return alive.length === live.length && alive.every((name, i) => name === live[i]);
  });
}
