/**
 * What a simulation run measured, gathered while it runs from the nodes' events and counters:
 * how fast changes spread, how fast crashes are detected, false suspicions and deaths of members
 * that were healthy the whole time, and the traffic each node sent.
 */
import type { MembershipEvent } from '../src/core/membership.js';
import type { ChurnFigures, ChurnRecorder } from './churn.js';
import type { Simulation, SimNode } from './engine.js';

export interface Distribution { count: number; p50: number; p99: number; max: number; mean: number }

export interface CrashFigures {
  subject: string;
  atMs: number;
  firstSuspectMs: number | undefined;
  firstDeadMs: number | undefined;
  /** When every node alive at the end agreed it was dead (or left). */
  allDeadMs: number | undefined;
  /** Per observer: time from the crash to its own "dead". */
  perObserverMs: number[];
}

export interface Sample {
  tMs: number;
  liveNodes: number;
  /** Mean over live nodes of (live members it sees) / (nodes actually live). 1 means everyone sees everyone. */
  viewAccuracy: number;
  /** Mean over live nodes of members it wrongly holds alive or suspect (crashed or departed ones). */
  staleMembers: number;
  messagesPerNodePerS: number;
  bytesPerNodePerS: number;
}

export interface RunMetrics {
  joins: Distribution;
  crashes: CrashFigures[];
  detection: { firstSuspect: Distribution; firstDead: Distribution; allDead: Distribution; perObserver: Distribution };
  falseSuspicions: { events: number; members: number };
  falseDeaths: { events: number; members: number };
  /** The part of falseDeaths about members with no fault at all (not even a pause): the ones Lifeguard protects. */
  falseDeathsHealthy: { events: number; members: number };
  traffic: { messagesPerNodePerS: { mean: number; max: number }; bytesPerNodePerS: { mean: number; max: number } };
  memory: { heapBytesPerMember: number | undefined; members: number };
  samples: Sample[];
  /** Churn scenarios only (sim/churn.ts). */
  churn?: ChurnFigures;
}

interface Spread { sinceMs: number; seen: Set<string> | undefined; doneMs: number | undefined }

export class Recorder {
  /** Members that had any fault (pause, partition, slowness, crash, leave): suspecting them is fair. */
  private readonly faulty = new Set<string>();
  /** Members cut off by a partition at some point: declaring them dead is what the protocol should do. */
  private readonly unreachable = new Set<string>();
  private readonly joins = new Map<string, Spread>();
  private readonly crashes = new Map<string, CrashFigures & { dead: Set<string> }>();
  private falseSuspicionEvents = 0;
  private falseDeathEvents = 0;
  private readonly falselySuspected = new Set<string>();
  private readonly falselyDead = new Set<string>();
  private falseHealthyDeathEvents = 0;
  private readonly falselyDeadHealthy = new Set<string>();
  private readonly bornMs = new Map<string, number>();
  readonly samples: Sample[] = [];
  private lastTotals = { messages: 0, bytes: 0, tMs: 0 };
  /** Set by churn scenarios: what churn does to the registry. */
  churn: ChurnRecorder | undefined;

  constructor(private readonly sim: Simulation, sampleEveryMs = 1_000) {
    sim.onEvent((node, event, atMs) => this.onEvent(node, event, atMs));
    const sample = (): void => {
      this.sample();
      sim.at(sim.nowMs + sampleEveryMs, sample);
    };
    sim.at(sim.nowMs + sampleEveryMs, sample);
  }

  /** Records that `name` suffered a fault (pause, slowness, crash, leave) at some point. */
  markFaulty(name: string): void {
    this.faulty.add(name);
  }

  /** Records that `name` was cut off by a partition: a death is then no false death. */
  markUnreachable(name: string): void {
    this.faulty.add(name);
    this.unreachable.add(name);
  }

  /** Measures how long until every other live node knows `name`, counting from now. */
  trackJoin(name: string): void {
    this.bornMs.set(name, this.sim.nowMs);
    this.joins.set(name, { sinceMs: this.sim.nowMs, seen: new Set(), doneMs: undefined });
  }

  /** Measures detection of a crash of `name` happening now. */
  trackCrash(name: string): void {
    this.markFaulty(name);
    this.crashes.set(name, {
      subject: name, atMs: this.sim.nowMs, firstSuspectMs: undefined, firstDeadMs: undefined, allDeadMs: undefined,
      perObserverMs: [], dead: new Set(),
    });
  }

  private onEvent(node: SimNode, event: MembershipEvent, atMs: number): void {
    if (!('member' in event)) return;
    const subject = event.member.name;
    if (event.type === 'joined' || event.type === 'alive' || event.type === 'updated') {
      const spread = this.joins.get(subject);
      if (spread?.seen !== undefined) {
        spread.seen.add(node.name);
        if (this.everyoneIn(spread.seen, subject)) {
          spread.doneMs = atMs - spread.sinceMs;
          spread.seen = undefined; // done: at 1,000 nodes these sets would hold a million names
        }
      }
    }
    const crash = this.crashes.get(subject);
    if (crash !== undefined) {
      const since = atMs - crash.atMs;
      if (event.type === 'suspect' && crash.firstSuspectMs === undefined) crash.firstSuspectMs = since;
      if (event.type === 'dead' || event.type === 'left') {
        crash.firstDeadMs ??= since;
        if (!crash.dead.has(node.name)) crash.perObserverMs.push(since);
        crash.dead.add(node.name);
        if (crash.allDeadMs === undefined && this.everyoneIn(crash.dead, subject)) crash.allDeadMs = since;
      } else if (event.type === 'joined' || event.type === 'alive') {
        crash.dead.delete(node.name);
      }
    }
    if (event.type === 'suspect' && !this.faulty.has(subject)) {
      this.falseSuspicionEvents++;
      this.falselySuspected.add(subject);
    }
    // A process that is running (perhaps stalled, but not crashed) and was never cut off must not die.
    if (event.type === 'dead' && this.sim.nodes.get(subject)?.up === true && !this.unreachable.has(subject)) {
      this.falseDeathEvents++;
      this.falselyDead.add(subject);
      if (!this.faulty.has(subject)) {
        this.falseHealthyDeathEvents++;
        this.falselyDeadHealthy.add(subject);
      }
    }
  }

  /** True if every live node other than `subject` is in `set`. */
  private everyoneIn(set: Set<string>, subject: string): boolean {
    const live = this.sim.upCount - (this.sim.nodes.get(subject)?.up === true ? 1 : 0);
    if (set.size < live) return false;
    for (const n of this.sim.nodes.values()) if (n.up && n.name !== subject && !set.has(n.name)) return false;
    return true;
  }

  private sample(): void {
    let live = 0;
    let messages = 0;
    let bytes = 0;
    for (const n of this.sim.nodes.values()) {
      messages += n.counters.packetsOut + n.counters.streamsOut;
      bytes += n.counters.bytesOut;
      if (n.up) live++;
    }
    let accuracy = 0;
    let stale = 0;
    for (const n of this.sim.nodes.values()) {
      if (!n.up) continue;
      const seen = n.core.liveMembers;
      accuracy += Math.min(seen, live) / live;
      // liveMembers counts self; anything above the truth is a member held alive that is not.
      stale += Math.max(0, seen - live);
    }
    const dt = (this.sim.nowMs - this.lastTotals.tMs) / 1000;
    this.samples.push({
      tMs: this.sim.nowMs,
      liveNodes: live,
      viewAccuracy: live === 0 ? 0 : accuracy / live,
      staleMembers: live === 0 ? 0 : stale / live,
      messagesPerNodePerS: dt > 0 && live > 0 ? (messages - this.lastTotals.messages) / live / dt : 0,
      bytesPerNodePerS: dt > 0 && live > 0 ? (bytes - this.lastTotals.bytes) / live / dt : 0,
    });
    this.lastTotals = { messages, bytes, tMs: this.sim.nowMs };
  }

  /** Final figures. `heapBytes` is the heap the cores account for, if the caller measured it. */
  finish(heapBytes?: number): RunMetrics {
    const nodes = [...this.sim.nodes.values()];
    let members = 0;
    for (const n of nodes) if (n.up) members += n.core.members().length;
    const rates = (pick: (n: SimNode) => number): { mean: number; max: number } => {
      const perNode = nodes.map((n) => pick(n) / Math.max(1e-9, (this.sim.nowMs - (this.bornMs.get(n.name) ?? 0)) / 1000));
      return { mean: perNode.reduce((a, b) => a + b, 0) / Math.max(1, perNode.length), max: Math.max(0, ...perNode) };
    };
    const crashes = [...this.crashes.values()].map(({ dead: _dead, ...figures }) => figures);
    const defined = (xs: (number | undefined)[]): number[] => xs.filter((x): x is number => x !== undefined);
    return {
      joins: distribution(defined([...this.joins.values()].map((s) => s.doneMs))),
      crashes,
      detection: {
        firstSuspect: distribution(defined(crashes.map((c) => c.firstSuspectMs))),
        firstDead: distribution(defined(crashes.map((c) => c.firstDeadMs))),
        allDead: distribution(defined(crashes.map((c) => c.allDeadMs))),
        perObserver: distribution(crashes.flatMap((c) => c.perObserverMs)),
      },
      falseSuspicions: { events: this.falseSuspicionEvents, members: this.falselySuspected.size },
      falseDeaths: { events: this.falseDeathEvents, members: this.falselyDead.size },
      falseDeathsHealthy: { events: this.falseHealthyDeathEvents, members: this.falselyDeadHealthy.size },
      traffic: {
        messagesPerNodePerS: rates((n) => n.counters.packetsOut + n.counters.streamsOut),
        bytesPerNodePerS: rates((n) => n.counters.bytesOut),
      },
      memory: { heapBytesPerMember: heapBytes === undefined || members === 0 ? undefined : heapBytes / members, members },
      samples: this.samples,
      ...(this.churn === undefined ? {} : { churn: this.churn.finish() }),
    };
  }
}

export function distribution(values: number[]): Distribution {
  if (values.length === 0) return { count: 0, p50: Number.NaN, p99: Number.NaN, max: Number.NaN, mean: Number.NaN };
  const s = values.slice().sort((a, b) => a - b);
  const at = (q: number): number => s[Math.min(s.length - 1, Math.floor(q * s.length))] as number;
  return { count: s.length, p50: at(0.5), p99: at(0.99), max: s[s.length - 1] as number, mean: s.reduce((a, b) => a + b, 0) / s.length };
}
