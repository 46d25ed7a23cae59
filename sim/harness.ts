/**
 * A tiny deterministic harness: N membership cores on a fake link with a virtual clock. `step()`
 * jumps the clock to the earliest pending event (a delivery or a core deadline) and runs it, so a
 * test can drive a cluster through any protocol path with no sleeps and replay it from its seed.
 * The full simulator (sim/) builds on the same shape; this file stays small.
 */
import { Membership, type MembershipEvent } from '../src/core/membership.js';
import type { ConfigOptions } from '../src/core/config.js';
import { randomFloat, seededRng, type Rng } from '../src/core/rng.js';
import type { Keyring } from '../src/core/seal.js';
import { TimerHeap } from '../src/core/timers.js';

export interface HarnessOptions {
  seed: number;
  /** One-way delay of every datagram and stream frame. */
  latencyMs?: number;
  /** Probability that a datagram is lost (streams are reliable). */
  lossRate?: number;
  /** Config for every node unless addNode overrides it. */
  config?: ConfigOptions;
  /** Record every frame put on the wire in `trace` (for tests that inspect packets). */
  trace?: boolean;
}

export interface NodeOptions {
  config?: ConfigOptions;
  meta?: Uint8Array;
  incarnation?: number;
  keyring?: Keyring;
}

/** A frame put on the wire, as recorded when `trace` is on. */
export interface TracedFrame extends Delivery {
  atMs: number;
}

export interface HarnessNode {
  name: string;
  addr: string;
  core: Membership;
  up: boolean;
  /** Virtual time until which the node is stalled: it neither receives nor runs timers. */
  pausedUntilMs: number;
  /** Input that arrived while stalled, processed in order when the stall ends. */
  backlog: Delivery[];
  /** Every event the core emitted, with the time it was drained. */
  events: { atMs: number; event: MembershipEvent }[];
}

export interface Delivery {
  from: string;
  to: string;
  bytes: Uint8Array;
  kind: 'datagram' | 'stream' | 'stream-reply';
}

/** Decides whether a frame is dropped (on top of random datagram loss). */
export type DropRule = (frame: Delivery) => boolean;

export class Harness {
  nowMs = 0;
  readonly nodes = new Map<string, HarnessNode>();
  readonly seed: number;
  private readonly network: Rng;
  private readonly nodeSeeds: Rng;
  private readonly inFlight = new TimerHeap<Delivery>();
  private readonly latencyMs: number;
  private readonly lossRate: number;
  private readonly config: ConfigOptions;
  private readonly dropRules = new Set<DropRule>();
  private readonly resumes = new TimerHeap<string>();
  delivered = 0;
  readonly trace: TracedFrame[] | undefined;

  constructor(options: HarnessOptions) {
    this.seed = options.seed;
    const root = seededRng(options.seed);
    // Separate streams per concern, so adding a node does not change the network's draws.
    this.network = seededRng(root.nextUint32());
    this.nodeSeeds = seededRng(root.nextUint32());
    this.latencyMs = options.latencyMs ?? 1;
    this.lossRate = options.lossRate ?? 0;
    this.config = options.config ?? { profile: 'lan' };
    this.trace = options.trace === true ? [] : undefined;
  }

  /** Adds a running node whose address is its name. */
  addNode(name: string, options: NodeOptions = {}): HarnessNode {
    const existing = this.nodes.get(name);
    const node: HarnessNode = existing ?? {
      name, addr: name, core: undefined as unknown as Membership, up: true, pausedUntilMs: 0, backlog: [], events: [],
    };
    node.core = new Membership({
      name, addr: name, rng: seededRng(this.nodeSeeds.nextUint32()), nowMs: this.nowMs,
      config: options.config ?? this.config,
      ...(options.meta !== undefined ? { meta: options.meta } : {}),
      ...(options.incarnation !== undefined ? { incarnation: options.incarnation } : {}),
      ...(options.keyring !== undefined ? { keyring: options.keyring } : {}),
    });
    node.up = true;
    node.pausedUntilMs = 0;
    node.backlog = [];
    this.nodes.set(name, node);
    this.drain(node);
    return node;
  }

  node(name: string): HarnessNode {
    const n = this.nodes.get(name);
    if (n === undefined) throw new Error(`no node ${name}`);
    return n;
  }

  /** Starts `count` nodes named n0..n{count-1}; each joins through n0. */
  startCluster(count: number): HarnessNode[] {
    const nodes: HarnessNode[] = [];
    for (let i = 0; i < count; i++) {
      const n = this.addNode(`n${i}`);
      if (i > 0) this.join(n.name, ['n0']);
      nodes.push(n);
    }
    return nodes;
  }

  join(name: string, seeds: string[]): void {
    const n = this.node(name);
    n.core.join(this.nowMs, seeds);
    this.drain(n);
  }

  /** Hands `bytes` to a node as if a datagram had arrived from `from` (e.g. forged or replayed). */
  inject(name: string, from: string, bytes: Uint8Array): void {
    const n = this.node(name);
    n.core.handleDatagram(this.nowMs, from, bytes);
    this.drain(n);
  }

  leave(name: string): void {
    const n = this.node(name);
    n.core.leave(this.nowMs);
    this.drain(n);
  }

  /** Stops a node silently: no leave, nothing more sent or received. */
  crash(name: string): void {
    this.node(name).up = false;
  }

  /** Replaces a crashed node with a fresh process of the same name (incarnation starts over). */
  restart(name: string, options: NodeOptions = {}): HarnessNode {
    return this.addNode(name, options);
  }

  /** Stalls a node's event loop for `ms`: input queues up and its timers wait. */
  pause(name: string, ms: number): void {
    const n = this.node(name);
    n.pausedUntilMs = this.nowMs + ms;
    this.resumes.schedule(n.pausedUntilMs, name);
  }

  addDropRule(rule: DropRule): () => void {
    this.dropRules.add(rule);
    return () => this.dropRules.delete(rule);
  }

  /** Cuts all datagrams and streams between the two groups until the returned function runs. */
  partition(groupA: readonly string[], groupB: readonly string[]): () => void {
    const a = new Set(groupA);
    const b = new Set(groupB);
    return this.addDropRule(({ from, to }) => (a.has(from) && b.has(to)) || (b.has(from) && a.has(to)));
  }

  /** Runs the earliest pending event. Returns false when nothing is pending. */
  step(): boolean {
    const next = this.nextTimeMs();
    if (next === undefined) return false;
    this.nowMs = Math.max(this.nowMs, next);
    const resumed = this.resumes.popDue(this.nowMs);
    if (resumed !== undefined) {
      this.resume(this.node(resumed.kind));
      return true;
    }
    const delivery = this.inFlight.popDue(this.nowMs);
    if (delivery !== undefined) {
      this.deliver(delivery.kind);
      return true;
    }
    for (const n of this.nodes.values()) {
      if (!this.runnable(n)) continue;
      const deadline = n.core.pollTimeoutMs();
      if (deadline !== undefined && deadline <= this.nowMs) {
        n.core.handleTimeout(this.nowMs);
        this.drain(n);
      }
    }
    return true;
  }

  /** Steps until virtual time `untilMs` (events at exactly that time included). */
  runUntil(untilMs: number): void {
    for (;;) {
      const next = this.nextTimeMs();
      if (next === undefined || next > untilMs) break;
      this.step();
    }
    this.nowMs = Math.max(this.nowMs, untilMs);
  }

  runFor(ms: number): void {
    this.runUntil(this.nowMs + ms);
  }

  /** Steps until `predicate` holds or `ms` of virtual time pass; returns whether it held. */
  runUntilTrue(predicate: () => boolean, ms: number): boolean {
    const end = this.nowMs + ms;
    while (!predicate()) {
      const next = this.nextTimeMs();
      if (next === undefined || next > end) {
        this.nowMs = end;
        return predicate();
      }
      this.step();
    }
    return true;
  }

  /** The state `observer` holds for `subject`, or undefined if it does not know it. */
  stateOf(observer: string, subject: string): string | undefined {
    return this.node(observer).core.member(subject)?.state;
  }

  /** Nodes that are up. */
  liveNodes(): HarnessNode[] {
    return [...this.nodes.values()].filter((n) => n.up);
  }

  eventsOf(name: string, type?: MembershipEvent['type']): MembershipEvent[] {
    return this.node(name).events.map((e) => e.event).filter((e) => type === undefined || e.type === type);
  }

  private nextTimeMs(): number | undefined {
    let next = this.inFlight.peekDeadlineMs();
    const resume = this.resumes.peekDeadlineMs();
    if (resume !== undefined && (next === undefined || resume < next)) next = resume;
    for (const n of this.nodes.values()) {
      if (!this.runnable(n)) continue;
      const d = n.core.pollTimeoutMs();
      if (d !== undefined && (next === undefined || d < next)) next = d;
    }
    return next;
  }

  private runnable(n: HarnessNode): boolean {
    return n.up && n.pausedUntilMs <= this.nowMs;
  }

  /**
   * Ends a stall the way Node's event loop does: expired timers run first (timers phase), and
   * only then does the input that queued up get read (poll phase). This is the worst order for
   * a failure detector, which is why the core defers accusations after a stall.
   */
  private resume(n: HarnessNode): void {
    if (n.pausedUntilMs > this.nowMs || !n.up) return; // paused again, or crashed, since
    n.core.handleTimeout(this.nowMs);
    this.drain(n);
    const backlog = n.backlog;
    n.backlog = [];
    for (const d of backlog) this.deliver(d);
  }

  private deliver(d: Delivery): void {
    const n = this.nodes.get(d.to);
    if (n === undefined || !n.up) return;
    if (n.pausedUntilMs > this.nowMs) {
      n.backlog.push(d);
      return;
    }
    this.delivered++;
    if (d.kind === 'datagram') {
      n.core.handleDatagram(this.nowMs, d.from, d.bytes);
    } else {
      const reply = n.core.handleStream(this.nowMs, d.from, d.bytes);
      if (reply !== undefined && d.kind === 'stream') this.enqueue({ from: d.to, to: d.from, bytes: reply, kind: 'stream-reply' });
    }
    this.drain(n);
  }

  private drain(n: HarnessNode): void {
    for (let t = n.core.pollTransmit(); t !== undefined; t = n.core.pollTransmit()) {
      if (!n.up) continue;
      this.enqueue({ from: n.addr, to: t.addr, bytes: t.bytes, kind: t.stream ? 'stream' : 'datagram' });
    }
    for (let e = n.core.pollEvent(); e !== undefined; e = n.core.pollEvent()) n.events.push({ atMs: this.nowMs, event: e });
  }

  private enqueue(d: Delivery): void {
    this.trace?.push({ ...d, atMs: this.nowMs });
    for (const rule of this.dropRules) if (rule(d)) return;
    if (d.kind === 'datagram' && this.lossRate > 0 && randomFloat(this.network) < this.lossRate) return;
    this.inFlight.schedule(this.nowMs + this.latencyMs, d);
  }
}
