/**
 * What churn does to the registry, measured while a simulation runs: every life (one process run
 * of a name) carries a record of its own and hosts one service, so the recorder can tell from
 * each member's events which life it lists and which services it can answer for. A member
 * serves a service's instance exactly while it lists the hosting member alive or suspect (the
 * Catalog's rule, tested in test/registry.test.ts), so this is measured on the member tables.
 *
 * - dead instances served: the invariant checker's no-resurrection violations (a stopped life
 *   listed alive or suspect after every running member had declared it over); goal 0.
 * - lookup gaps: time a running member found no instance of a service while some instance of it
 *   had been up for ESTABLISHED_MS (long enough to have spread); goal 0.
 * - new life visible everywhere: from a start to every other running member listing that life.
 * - member events per change, per observer; all see all (after the last start) and the number of
 *   distinct cluster sizes members reported, for mass joins.
 */
import type { MembershipEvent } from '../src/core/context.js';
import type { Membership } from '../src/core/membership.js';
import { bytesEqual } from '../src/core/members.js';
import type { SimNode, Simulation } from './engine.js';
import { InvariantChecker, type InvariantName } from './invariants.js';
import { type Distribution, distribution } from './metrics.js';

/** How long an instance (and an observer) must have been up before missing it counts as a gap: spread time, generously. */
export const ESTABLISHED_MS = 10_000;

export interface ChurnFigures {
  /** Starts, stops and leaves the scenario made after the warm-up. */
  changes: number;
  deadInstancesServed: number;
  invariantViolations: Partial<Record<InvariantName, number>>;
  firstViolations: string[];
  lookupGaps: { count: number; totalMs: number; maxMs: number };
  /** New lives (restarts, replacements, joins) after the warm-up, start to visible at every other running member. */
  visibleEverywhere: Distribution;
  /** New lives still running at the end and not yet visible everywhere. */
  notVisible: number;
  /** Member events after the warm-up, per change and per member running at the end. */
  eventsPerChange: number;
  /** Time from the last start to every running member seeing every other alive, if they all did. */
  allSeeAllMs: number | undefined;
  distinctClusterSizes: number;
}

interface Life {
  name: string;
  core: Membership;
  record: Uint8Array;
  service: string;
  startedMs: number;
  established: boolean;
  /** Running observers that listed this life alive or suspect, until it is visible everywhere. */
  seenBy: Set<Membership> | undefined;
  visibleMs: number | undefined;
  counted: boolean;
}

export class ChurnRecorder {
  readonly invariants: InvariantChecker;
  private readonly lives = new Map<Membership, Life>();
  /** The service each name hosts (a replacement may take over a crashed member's). */
  private readonly services = new Map<string, string>();
  /** Established instances per service. */
  private readonly established = new Map<string, number>();
  /** Per observer: the subjects it lists alive or suspect, and how many of each service's hosts. */
  private readonly listed = new Map<Membership, Set<string>>();
  private readonly serving = new Map<Membership, Map<string, number>>();
  private readonly eligible = new Set<Membership>();
  private readonly openGaps = new Map<Membership, Map<string, number>>();
  private gaps = { count: 0, totalMs: 0, maxMs: 0 };
  private measuringFromMs = Number.POSITIVE_INFINITY;
  private changes = 0;
  private events = 0;
  private lastStartMs = 0;
  private allSeeAllMs: number | undefined;
  private readonly sizes = new Set<number>();
  private serial = 0;
  /** Running members whose live count equals the number running. */
  private readonly full = new Set<Membership>();
  /** Lives told to stop: their instances are no longer offered, even while a leave is under way. */
  private readonly stopping = new WeakSet<Membership>();

  constructor(private readonly sim: Simulation) {
    this.invariants = new InvariantChecker(sim);
    sim.onEvent((node, event, atMs) => this.onEvent(node, event, atMs));
    sim.onLifecycle((node, change, core) => (change === 'started' ? this.onStarted(node, core) : this.onStopped(core)));
  }

  /** Counts changes, events and new lives from now on (the end of the warm-up). */
  measureFrom(atMs: number): void {
    this.measuringFromMs = atMs;
  }

  /**
   * Starts a life of `name` (a new member, or a restart of a stopped one) hosting `service`
   * (default: the service the name hosted before, or its own name), joining through `seeds`
   * (names, joined at their current addresses).
   * `change`: whether this start is a change of its own (false for the second half of a restart).
   */
  start(name: string, seeds: readonly string[], options: { service?: string; addr?: string; change?: boolean } = {}): void {
    if (options.service !== undefined) this.services.set(name, options.service);
    const serial = ++this.serial;
    const record = Uint8Array.of(serial >>> 24, (serial >>> 16) & 0xff, (serial >>> 8) & 0xff, serial & 0xff);
    this.sim.addNode(name, options.addr === undefined ? { record } : { record, addr: options.addr });
    // Seeds by name, resolved to where they listen now, as a DNS seed list would be.
    const others = seeds.filter((seed) => seed !== name).map((seed) => this.sim.nodes.get(seed)?.addr ?? seed);
    if (others.length > 0) this.sim.join(name, others);
    if (options.change !== false) this.countChange();
  }

  /** The service `name` hosts. */
  serviceOf(name: string): string {
    return this.services.get(name) ?? name;
  }

  /** Stops `name`: a crash, or a graceful leave and the process's exit `exitAfterMs` later. */
  stop(name: string, graceful: boolean, exitAfterMs = 1_000, change = true): void {
    const life = this.lifeOf(name);
    if (life !== undefined) {
      this.stopping.add(life.core);
      this.unestablish(life);
    }
    if (change) this.countChange();
    if (!graceful) return this.sim.crash(name);
    const core = this.sim.node(name).core;
    this.sim.leave(name);
    this.sim.at(this.sim.nowMs + exitAfterMs, () => {
      if (this.sim.node(name).core === core) this.sim.crash(name);
    });
  }

  /** Stops `name` and starts a new life of it `downMs` later: one change. */
  restart(name: string, seeds: readonly string[], downMs: number, options: { graceful: boolean; addr?: string }): void {
    this.stop(name, options.graceful, Math.min(1_000, downMs), true);
    this.sim.at(this.sim.nowMs + downMs, () => this.start(name, seeds, { change: false, ...(options.addr === undefined ? {} : { addr: options.addr }) }));
  }

  finish(): ChurnFigures {
    const now = this.sim.nowMs;
    for (const [observer, open] of this.openGaps) for (const service of open.keys()) this.closeGap(observer, service, now);
    const measured = [...this.lives.values()].filter((l) => l.counted);
    const visible = measured.flatMap((l) => (l.visibleMs === undefined ? [] : [l.visibleMs - l.startedMs]));
    const running = new Set([...this.sim.nodes.values()].filter((n) => n.up).map((n) => n.core));
    const notVisible = measured.filter((l) => l.visibleMs === undefined && running.has(l.core)).length;
    const counts = this.invariants.counts;
    return {
      changes: this.changes,
      deadInstancesServed: counts['no-resurrection'] ?? 0,
      invariantViolations: { ...counts },
      firstViolations: this.invariants.violations.slice(0, 5).map((v) => `${v.atMs} ms ${v.invariant}: ${v.detail}`),
      lookupGaps: { ...this.gaps },
      visibleEverywhere: distribution(visible),
      notVisible,
      eventsPerChange: this.changes === 0 ? 0 : this.events / this.changes / Math.max(1, this.sim.upCount - 1),
      allSeeAllMs: this.allSeeAllMs,
      distinctClusterSizes: this.sizes.size,
    };
  }

  private countChange(): void {
    if (this.sim.nowMs < this.measuringFromMs) return;
    this.changes++;
  }

  private lifeOf(name: string): Life | undefined {
    const node = this.sim.nodes.get(name);
    return node === undefined ? undefined : this.lives.get(node.core);
  }

  private onStarted(node: SimNode, core: Membership): void {
    const service = this.services.get(node.name) ?? node.name;
    this.services.set(node.name, service);
    const record = core.self().record;
    const life: Life = {
      name: node.name, core, record, service, startedMs: this.sim.nowMs, established: false, seenBy: new Set(), visibleMs: undefined,
      counted: this.sim.nowMs >= this.measuringFromMs,
    };
    this.lives.set(core, life);
    this.listed.set(core, new Set());
    this.serving.set(core, new Map());
    this.lastStartMs = this.sim.nowMs;
    this.allSeeAllMs = undefined;
    this.recountFull();
    this.sim.at(this.sim.nowMs + ESTABLISHED_MS, () => {
      if (!node.up || node.core !== core || this.stopping.has(core)) return;
      this.eligible.add(core);
      for (const service of this.established.keys()) this.evalGap(core, service);
      this.establish(life);
    });
  }

  private onStopped(core: Membership): void {
    const life = this.lives.get(core);
    if (life !== undefined) this.unestablish(life);
    this.eligible.delete(core);
    const open = this.openGaps.get(core);
    if (open !== undefined) for (const service of [...open.keys()]) this.closeGap(core, service, this.sim.nowMs);
    for (const l of this.lives.values()) {
      if (l.seenBy === undefined || l.core === core) continue;
      l.seenBy.delete(core);
      if (this.visibleToAll(l)) this.markVisible(l, this.sim.nowMs);
    }
    this.listed.delete(core);
    this.serving.delete(core);
    this.recountFull();
  }

  private establish(life: Life): void {
    life.established = true;
    const n = (this.established.get(life.service) ?? 0) + 1;
    this.established.set(life.service, n);
    if (n === 1) for (const observer of this.eligible) this.evalGap(observer, life.service);
  }

  private unestablish(life: Life): void {
    if (!life.established) return;
    life.established = false;
    const n = (this.established.get(life.service) ?? 1) - 1;
    this.established.set(life.service, n);
    if (n === 0) for (const observer of this.eligible) this.evalGap(observer, life.service);
  }

  private onEvent(node: SimNode, event: MembershipEvent, atMs: number): void {
    if (!('member' in event)) return;
    const observer = node.core;
    if (atMs >= this.measuringFromMs) this.events++;
    const m = event.member;
    if (m.name === node.name) return;
    const listed = this.listed.get(observer);
    const serving = this.serving.get(observer);
    if (listed === undefined || serving === undefined) return;
    const live = m.state === 'alive' || m.state === 'suspect';
    const subject = this.sim.nodes.get(m.name);
    const service = this.services.get(m.name) ?? m.name;
    if (live !== listed.has(m.name)) {
      if (live) listed.add(m.name);
      else listed.delete(m.name);
      const n = (serving.get(service) ?? 0) + (live ? 1 : -1);
      serving.set(service, n);
      if (n === 0 || (n === 1 && live)) this.evalGap(observer, service);
      this.sizes.add(node.core.liveMembers);
      this.noteLiveCount(observer, atMs);
    }
    const life = subject === undefined ? undefined : this.lives.get(subject.core);
    if (live && life?.seenBy !== undefined && bytesEqual(m.record, life.record)) {
      life.seenBy.add(observer);
      if (this.visibleToAll(life)) this.markVisible(life, atMs);
    }
  }

  private markVisible(life: Life, atMs: number): void {
    life.visibleMs = atMs;
    life.seenBy = undefined;
  }

  private visibleToAll(life: Life): boolean {
    const seen = life.seenBy as Set<Membership>;
    if (seen.size < this.sim.upCount - 1) return false;
    for (const n of this.sim.nodes.values()) if (n.up && n.core !== life.core && !seen.has(n.core)) return false;
    return true;
  }

  /** Counts members that see every running member, as their live counts change. */
  private noteLiveCount(core: Membership, atMs: number): void {
    const full = core.liveMembers === this.sim.upCount;
    if (full !== this.full.has(core)) {
      if (full) this.full.add(core);
      else this.full.delete(core);
    }
    if (this.allSeeAllMs === undefined && this.full.size === this.sim.upCount) this.allSeeAllMs = atMs - this.lastStartMs;
  }

  /** The number of running members changed: every member's count is measured against the new one. */
  private recountFull(): void {
    this.full.clear();
    for (const n of this.sim.nodes.values()) if (n.up && n.core.liveMembers === this.sim.upCount) this.full.add(n.core);
  }

  private evalGap(observer: Membership, service: string): void {
    const open = this.openGaps.get(observer)?.get(service);
    const missing = this.eligible.has(observer) && (this.established.get(service) ?? 0) > 0 && (this.serving.get(observer)?.get(service) ?? 0) === 0;
    if (missing && open === undefined) {
      let byService = this.openGaps.get(observer);
      if (byService === undefined) {
        byService = new Map();
        this.openGaps.set(observer, byService);
      }
      byService.set(service, this.sim.nowMs);
    } else if (!missing && open !== undefined) {
      this.closeGap(observer, service, this.sim.nowMs);
    }
  }

  private closeGap(observer: Membership, service: string, now: number): void {
    const open = this.openGaps.get(observer);
    const since = open?.get(service);
    if (open === undefined || since === undefined) return;
    open.delete(service);
    const ms = now - since;
    this.gaps.count++;
    this.gaps.totalMs += ms;
    this.gaps.maxMs = Math.max(this.gaps.maxMs, ms);
  }
}
