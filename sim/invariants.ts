/**
 * Protocol invariants, checked on any simulation while it runs (tests, and `npm run sim --
 * --check`). Safety first, as TigerBeetle's VOPR does: these must hold at every moment, faults
 * or not. Liveness (`converged`) holds only once faults have healed and the cluster settled.
 * A member's view changes only by the events its core emits, so checking each event as it is
 * drained checks every step of the run.
 *
 * Safety, per observer process (a restart is a new observer):
 *  - liveness-monotonic: a member's (incarnation, state) never goes back, in the order of
 *    members.ts (higher incarnation, then left > dead > suspect > alive). The one exception is
 *    a dead or left member whose tombstone was reaped and who is learned again ('joined').
 *  - identity-monotonic: while a member is alive, its (incarnation, record version) never goes
 *    back: an old record never overwrites a newer one. Same exception.
 *  - self-never-condemned: a running member never holds itself suspect or dead (it refutes).
 *  - no-lost-events: no core discarded events because its driver fell behind.
 *
 * Under churn, per life (one process run of a name; a restart starts a new one):
 *  - no-resurrection: once a life has stopped, some member has declared it dead or left, and no
 *    running member lists it alive or suspect (each declared it over, or never knew it), no
 *    member, including ones that join later, lists it alive or suspect (and so serves its
 *    instances) until a new life starts.
 *  - one-joined-per-life: an observer reports a life `joined` at most once, again only after it
 *    reported that life dead or left (a false death refuted, a partition healed).
 *  - joiner-view-clean: when a joiner's first join reply is merged, its table lists alive or
 *    suspect no life that had stopped and been declared over before the joiner started.
 */
import type { MembershipEvent } from '../src/core/context.js';
import type { Membership } from '../src/core/membership.js';
import type { MemberStateName } from '../src/core/members.js';
import type { SimNode, Simulation } from './engine.js';

export type InvariantName =
  | 'liveness-monotonic' | 'identity-monotonic' | 'self-never-condemned' | 'no-lost-events'
  | 'no-resurrection' | 'one-joined-per-life' | 'joiner-view-clean';

export interface Violation {
  atMs: number;
  invariant: InvariantName;
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
  /** The subject's life this observer last reported 'joined', and whether it reported it dead or left since. */
  joinedLife: Membership | undefined;
  endedSinceJoined: boolean;
}

/** A life that stopped and that no running member lists alive or suspect any more. */
interface Condemned {
  life: Membership;
  sinceMs: number;
}

export class InvariantChecker {
  readonly violations: Violation[] = [];
  /** All violations, including those past VIOLATIONS_KEPT. */
  count = 0;
  /** How many times `check()` ran. */
  checks = 0;
  /** Violations by invariant, counted in full. */
  readonly counts: Partial<Record<InvariantName, number>> = {};
  private readonly seen = new WeakMap<Membership, Map<string, Seen>>();
  /** Per subject name: the running observers (their cores) that list it alive or suspect. */
  private readonly liveHolders = new Map<string, Set<Membership>>();
  private readonly condemned = new Map<string, Condemned>();
  /** Per subject name: its life that some member has reported dead or left. */
  private readonly declared = new Map<string, Membership>();
  /** When each observer life started, and whether its first join reply was checked. */
  private readonly startedMs = new WeakMap<Membership, number>();
  private readonly joinChecked = new WeakSet<Membership>();
  private readonly unsubscribe: (() => void)[];

  constructor(private readonly sim: Simulation) {
    // Lives already running: take their tables as they are now.
    for (const n of sim.nodes.values()) {
      if (!n.up) continue;
      for (const m of n.core.members()) {
        if (m.name !== n.name && (m.state === 'alive' || m.state === 'suspect')) this.holders(m.name).add(n.core);
      }
    }
    this.unsubscribe = [
      sim.onEvent((node, event, atMs) => this.onEvent(node, event, atMs)),
      sim.onLifecycle((node, change, core) => (change === 'started' ? this.onStarted(node, core) : this.onStopped(node, core))),
    ];
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
    for (const u of this.unsubscribe) u();
  }

  /** The violations in a few lines, then `replay`: the seed or command that replays the run. */
  report(replay: string): string {
    const lines = this.violations.slice(0, 10).map((v) => `  ${v.atMs} ms  ${v.invariant}: ${v.detail}`);
    if (this.count > lines.length) lines.push(`  ... ${this.count - lines.length} more`);
    return `${this.count} invariant violation(s):\n${lines.join('\n')}\nreplay with: ${replay}`;
  }

  private onEvent(node: SimNode, event: MembershipEvent, atMs: number): void {
    if (event.type === 'synced') {
      if (event.join) this.checkJoinerView(node, atMs);
      return;
    }
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
    const seen: Seen = {
      incarnation: m.incarnation, rank,
      aliveIncarnation: alive ? m.incarnation : before?.aliveIncarnation ?? -1,
      version: alive ? m.version : before?.version ?? -1,
      joinedLife: before?.joinedLife, endedSinceJoined: before?.endedSinceJoined ?? false,
    };
    table.set(m.name, seen);
    this.followLife(node, event.type, m.name, m.state, seen, atMs);
  }

  /** The churn invariants for one event of `observer` about `subject`. */
  private followLife(observer: SimNode, type: MembershipEvent['type'], subject: string, state: MemberStateName, seen: Seen, atMs: number): void {
    const subjectNode = this.sim.nodes.get(subject);
    if (subjectNode === undefined) return; // a name no process ever had (forged input)
    const life = subjectNode.core;
    const live = state === 'alive' || state === 'suspect';
    if (type === 'joined') {
      if (seen.joinedLife === life && !seen.endedSinceJoined) {
        this.fail('one-joined-per-life', `${observer.name} reported ${subject} joined twice in one life, with no death or leave between`, atMs);
      }
      seen.joinedLife = life;
      seen.endedSinceJoined = false;
    } else if (type === 'dead' || type === 'left') {
      seen.endedSinceJoined = true;
      this.declared.set(subject, life);
    }
    const over = this.condemned.get(subject);
    if (live && over !== undefined && over.life === life) {
      this.fail('no-resurrection', `${observer.name} lists ${subject} ${state} (${type}), ${Math.round(atMs - over.sinceMs)} ms after every running member had declared that stopped life over`, atMs);
    }
    const holders = this.holders(subject);
    if (live) holders.add(observer.core);
    else if (holders.delete(observer.core)) this.maybeCondemn(subjectNode, atMs);
  }

  private onStarted(node: SimNode, core: Membership): void {
    this.condemned.delete(node.name);
    this.startedMs.set(core, this.sim.nowMs);
  }

  private onStopped(node: SimNode, core: Membership): void {
    for (const [subject, holders] of this.liveHolders) {
      const subjectNode = holders.delete(core) ? this.sim.nodes.get(subject) : undefined;
      if (subjectNode !== undefined) this.maybeCondemn(subjectNode, this.sim.nowMs);
    }
    this.maybeCondemn(node, this.sim.nowMs);
  }

  private maybeCondemn(subject: SimNode, atMs: number): void {
    // A life nobody has declared over yet may still be learned from what it sent before it stopped.
    if (subject.up || this.condemned.has(subject.name) || this.declared.get(subject.name) !== subject.core) return;
    if ((this.liveHolders.get(subject.name)?.size ?? 0) > 0) return;
    this.condemned.set(subject.name, { life: subject.core, sinceMs: atMs });
  }

  /** A joiner's first merged join reply: nothing it lists alive or suspect may be a life declared over before it started. */
  private checkJoinerView(joiner: SimNode, atMs: number): void {
    const core = joiner.core;
    if (this.joinChecked.has(core)) return;
    this.joinChecked.add(core);
    const startedMs = this.startedMs.get(core);
    if (startedMs === undefined) return;
    for (const m of core.members()) {
      if (m.state !== 'alive' && m.state !== 'suspect') continue;
      const over = this.condemned.get(m.name);
      if (over !== undefined && over.sinceMs < startedMs && this.sim.nodes.get(m.name)?.core === over.life) {
        this.fail('joiner-view-clean', `${joiner.name}'s first view lists ${m.name} ${m.state}, a life declared over ${Math.round(startedMs - over.sinceMs)} ms before it started`, atMs);
      }
    }
  }

  private holders(subject: string): Set<Membership> {
    let set = this.liveHolders.get(subject);
    if (set === undefined) {
      set = new Set();
      this.liveHolders.set(subject, set);
    }
    return set;
  }

  private fail(invariant: InvariantName, detail: string, atMs = this.sim.nowMs): void {
    this.count++;
    this.counts[invariant] = (this.counts[invariant] ?? 0) + 1;
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
