/**
 * The deterministic simulator: N membership cores on a virtual network with a virtual clock.
 * One heap holds every pending event (frame deliveries, node wake-ups, stall ends, scheduled
 * actions); `step()` jumps the clock to the earliest and runs it, so a run costs time in
 * proportion to what happens, not to wall time, and replays exactly from its seed. Randomness
 * comes from separate streams per concern (network, each node), all derived from the seed.
 */
import type { ConfigOptions } from '../src/core/config.js';
import { Membership, type MembershipEvent } from '../src/core/membership.js';
import { type Rng, seededRng } from '../src/core/rng.js';
import type { Keyring } from '../src/core/seal.js';
import { type Timer, TimerHeap } from '../src/core/timers.js';
import { encodePacket, MemberState, MessageType, withRecord } from '../src/core/wire.js';
import { type DropRule, type Frame, Network, type NetworkOptions } from './network.js';

export interface SimulationOptions {
  seed: number;
  /** Protocol profile and overrides for every node unless addNode says otherwise. */
  config?: ConfigOptions;
  network?: NetworkOptions;
  /** Record every frame put on the wire in `trace` (small runs; tests that inspect packets). */
  trace?: boolean;
  /** Keep every node's events in `node.events` (default true; large runs turn it off and use onEvent). */
  keepEvents?: boolean;
}

export interface NodeOptions {
  config?: ConfigOptions;
  /** The address this life listens on (default: the name). A restart may move a member to a new one. */
  addr?: string;
  record?: Uint8Array;
  incarnation?: number;
  keyring?: Keyring;
}

export interface NodeCounters {
  packetsOut: number;
  bytesOut: number;
  packetsIn: number;
  bytesIn: number;
  streamsOut: number;
}

export interface SimNode {
  readonly name: string;
  /** Where this life listens; frames are routed by address, so partitions and drop rules see addresses. */
  addr: string;
  core: Membership;
  up: boolean;
  /** Virtual time until which the node is stalled: it neither receives nor runs timers. */
  pausedUntilMs: number;
  /** Extra delay before the node handles anything (a slow CPU). */
  slowMs: number;
  /** Input that arrived while stalled, handled in order when the stall ends. */
  backlog: Frame[];
  /** Every event the core emitted, with the time it was drained (when keepEvents). */
  events: { atMs: number; event: MembershipEvent }[];
  counters: NodeCounters;
  wake: Timer<SimEvent> | undefined;
}

/** A frame put on the wire, as recorded when `trace` is on. */
export interface TracedFrame extends Frame {
  atMs: number;
}

type SimEvent =
  | { kind: 'deliver'; frame: Frame; slowed: boolean }
  | { kind: 'wake'; node: SimNode }
  | { kind: 'resume'; node: SimNode }
  | { kind: 'action'; run: () => void };

export type EventListener = (node: SimNode, event: MembershipEvent, atMs: number) => void;
/** A process started (a new core: a new life of its name) or stopped; `core` is that life's. */
export type LifecycleListener = (node: SimNode, change: 'started' | 'stopped', core: Membership) => void;

export class Simulation {
  nowMs = 0;
  readonly seed: number;
  readonly network: Network;
  readonly nodes = new Map<string, SimNode>();
  readonly trace: TracedFrame[] | undefined;
  /** Events run so far: the simulator's unit of work. */
  eventsProcessed = 0;
  /** Nodes currently running (not crashed). */
  upCount = 0;
  private readonly heap = new TimerHeap<SimEvent>();
  private readonly nodeSeeds: Rng;
  private readonly config: ConfigOptions;
  private readonly keepEvents: boolean;
  private readonly listeners = new Set<EventListener>();
  private readonly lifecycleListeners = new Set<LifecycleListener>();
  /** Running lives by address (frames are delivered by address). */
  private readonly byAddr = new Map<string, SimNode>();

  constructor(options: SimulationOptions) {
    this.seed = options.seed;
    const root = seededRng(options.seed);
    // Separate streams per concern, so adding a node does not change the network's draws.
    this.network = new Network(seededRng(root.nextUint32()), options.network);
    this.nodeSeeds = seededRng(root.nextUint32());
    this.config = options.config ?? { profile: 'lan' };
    this.trace = options.trace === true ? [] : undefined;
    this.keepEvents = options.keepEvents ?? true;
  }

  // ---------------------------------------------------------------- building a cluster

  /**
   * Adds a running node, by default at the address of its name (or replaces a crashed one: a
   * restart, a new life of the name, at a new address if `options.addr` says so).
   */
  addNode(name: string, options: NodeOptions = {}): SimNode {
    const existing = this.nodes.get(name);
    if (existing?.up === true) this.crash(name);
    const addr = options.addr ?? name;
    const node: SimNode = existing ?? {
      name, addr, core: undefined as unknown as Membership, up: true, pausedUntilMs: 0, slowMs: 0, backlog: [], events: [],
      counters: { packetsOut: 0, bytesOut: 0, packetsIn: 0, bytesIn: 0, streamsOut: 0 }, wake: undefined,
    };
    node.addr = addr;
    this.byAddr.set(addr, node);
    node.core = new Membership({
      name, addr, rng: seededRng(this.nodeSeeds.nextUint32()), nowMs: this.nowMs,
      config: options.config ?? this.config,
      ...(options.record !== undefined ? { record: options.record } : {}),
      ...(options.incarnation !== undefined ? { incarnation: options.incarnation } : {}),
      ...(options.keyring !== undefined ? { keyring: options.keyring } : {}),
    });
    if (!node.up || existing === undefined) this.upCount++;
    node.up = true;
    node.pausedUntilMs = 0;
    node.backlog = [];
    this.nodes.set(name, node);
    for (const listener of this.lifecycleListeners) listener(node, 'started', node.core);
    this.drain(node);
    return node;
  }

  node(name: string): SimNode {
    const n = this.nodes.get(name);
    if (n === undefined) throw new Error(`no node ${name}`);
    return n;
  }

  /** Starts `count` nodes named n0..; each joins through n0, spread over `staggerMs`. */
  startCluster(count: number, staggerMs = 0): SimNode[] {
    const nodes: SimNode[] = [this.addNode('n0')];
    for (let i = 1; i < count; i++) {
      const name = `n${i}`;
      if (staggerMs <= 0) {
        nodes.push(this.addNode(name));
        this.join(name, ['n0']);
      } else {
        this.at(this.nowMs + (staggerMs * i) / count, () => {
          this.addNode(name);
          this.join(name, ['n0']);
        });
      }
    }
    return nodes;
  }

  /**
   * Starts the named nodes already converged: each receives the whole table as the reply to a
   * join would carry it, so nothing is gossiped about it. For steady-state runs at large N.
   */
  bootstrap(names: readonly string[]): void {
    const table = encodePacket([{
      type: MessageType.PushPull, join: true, reply: true,
      members: names.map((name) => ({ name, addr: name, aliveIncarnation: 0, incarnation: 0, state: MemberState.Alive, ...withRecord() })),
    }]);
    for (const name of names) {
      const n = this.addNode(name, { config: { ...this.config, membersMax: Math.max(100_000, names.length + 1) } });
      n.core.handleStream(this.nowMs, name, table);
      this.drain(n);
    }
  }

  /** Runs `action` at virtual time `atMs` (scenario steps, scheduled faults). */
  at(atMs: number, action: () => void): void {
    this.heap.schedule(Math.max(atMs, this.nowMs), { kind: 'action', run: action });
  }

  onEvent(listener: EventListener): () => void {
    this.listeners.add(listener);
    return () => void this.listeners.delete(listener);
  }

  /** Calls `listener` whenever a process starts or stops (crash, or a restart replacing it). */
  onLifecycle(listener: LifecycleListener): () => void {
    this.lifecycleListeners.add(listener);
    return () => void this.lifecycleListeners.delete(listener);
  }

  // ---------------------------------------------------------------- faults and commands

  join(name: string, seeds: string[]): void {
    const n = this.node(name);
    n.core.join(this.nowMs, seeds);
    this.drain(n);
  }

  leave(name: string): void {
    const n = this.node(name);
    n.core.leave(this.nowMs);
    this.drain(n);
  }

  /** Stops a node silently: no leave, nothing more sent or received. */
  crash(name: string): void {
    const n = this.node(name);
    if (!n.up) return;
    this.upCount--;
    n.up = false;
    if (n.wake !== undefined) n.wake.cancelled = true;
    n.wake = undefined;
    if (this.byAddr.get(n.addr) === n) this.byAddr.delete(n.addr);
    for (const listener of this.lifecycleListeners) listener(n, 'stopped', n.core);
  }

  /** Replaces a crashed node with a fresh process of the same name (incarnation starts over). */
  restart(name: string, options: NodeOptions = {}): SimNode {
    return this.addNode(name, options);
  }

  /** Stalls a node's event loop for `ms`: input queues up and its timers wait (a GC pause, a blocked loop). */
  pause(name: string, ms: number): void {
    const n = this.node(name);
    n.pausedUntilMs = Math.max(n.pausedUntilMs, this.nowMs + ms);
    this.heap.schedule(n.pausedUntilMs, { kind: 'resume', node: n });
  }

  /** Delays everything the node handles by `ms` (0 restores it). */
  slow(name: string, ms: number): void {
    this.node(name).slowMs = ms;
  }

  addDropRule(rule: DropRule): () => void {
    return this.network.addDropRule(rule);
  }

  /** Cuts frames between the groups (`oneWay`: only a → b) until the returned function runs. */
  partition(groupA: readonly string[], groupB: readonly string[], oneWay = false): () => void {
    return this.network.partition(groupA, groupB, oneWay);
  }

  /** Runs a command against a node's core (e.g. a record write), then sends what it produced. */
  command(name: string, apply: (core: Membership, nowMs: number) => void): void {
    const n = this.node(name);
    apply(n.core, this.nowMs);
    this.drain(n);
  }

  /** Hands `bytes` to a node as if a datagram had arrived from `from` (forged or replayed input). */
  inject(name: string, from: string, bytes: Uint8Array): void {
    const n = this.node(name);
    n.core.handleDatagram(this.nowMs, from, bytes);
    this.drain(n);
  }

  // ---------------------------------------------------------------- running

  /** Runs the earliest pending event. Returns false when nothing is pending. */
  step(): boolean {
    const next = this.heap.peekDeadlineMs();
    if (next === undefined) return false;
    this.nowMs = Math.max(this.nowMs, next);
    const timer = this.heap.popDue(this.nowMs) as Timer<SimEvent>;
    this.eventsProcessed++;
    const e = timer.kind;
    switch (e.kind) {
      case 'deliver': this.deliver(e.frame, e.slowed); break;
      case 'wake': this.onWake(e.node, timer); break;
      case 'resume': this.resume(e.node); break;
      case 'action': e.run(); break;
    }
    return true;
  }

  /** Steps until virtual time `untilMs` (events at exactly that time included). */
  runUntil(untilMs: number): void {
    for (;;) {
      const next = this.heap.peekDeadlineMs();
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
      const next = this.heap.peekDeadlineMs();
      if (next === undefined || next > end) {
        this.nowMs = end;
        return predicate();
      }
      this.step();
    }
    return true;
  }

  // ---------------------------------------------------------------- views

  /** The state `observer` holds for `subject`, or undefined if it does not know it. */
  stateOf(observer: string, subject: string): string | undefined {
    return this.node(observer).core.member(subject)?.state;
  }

  liveNodes(): SimNode[] {
    return [...this.nodes.values()].filter((n) => n.up);
  }

  eventsOf(name: string, type?: MembershipEvent['type']): MembershipEvent[] {
    return this.node(name).events.map((e) => e.event).filter((e) => type === undefined || e.type === type);
  }

  // ---------------------------------------------------------------- internals

  private runnable(n: SimNode): boolean {
    return n.up && n.pausedUntilMs <= this.nowMs;
  }

  private onWake(n: SimNode, timer: Timer<SimEvent>): void {
    if (n.wake !== timer) return;
    n.wake = undefined;
    if (!this.runnable(n)) return; // a stalled node's timers run when it resumes
    n.core.handleTimeout(this.nowMs);
    this.drain(n);
  }

  /**
   * Ends a stall the way Node's event loop does: expired timers run first (timers phase), and
   * only then does the input that queued up get read (poll phase). This is the worst order for
   * a failure detector, which is why the core defers accusations after a stall.
   */
  private resume(n: SimNode): void {
    if (n.pausedUntilMs > this.nowMs || !n.up) return; // paused again, or crashed, since
    n.core.handleTimeout(this.nowMs);
    this.drain(n);
    const backlog = n.backlog;
    n.backlog = [];
    for (const frame of backlog) this.deliver(frame, true);
  }

  private deliver(frame: Frame, slowed: boolean): void {
    const n = this.byAddr.get(frame.to);
    if (n === undefined || !n.up) return;
    if (n.pausedUntilMs > this.nowMs) {
      n.backlog.push(frame);
      return;
    }
    if (n.slowMs > 0 && !slowed) {
      this.heap.schedule(this.nowMs + n.slowMs, { kind: 'deliver', frame, slowed: true });
      return;
    }
    n.counters.packetsIn++;
    n.counters.bytesIn += frame.bytes.length;
    if (frame.kind === 'datagram') {
      n.core.handleDatagram(this.nowMs, frame.from, frame.bytes);
    } else {
      const reply = n.core.handleStream(this.nowMs, frame.from, frame.bytes);
      if (reply !== undefined && frame.kind === 'stream') {
        n.counters.bytesOut += reply.length;
        this.send({ from: frame.to, to: frame.from, bytes: reply, kind: 'stream-reply' });
      }
    }
    this.drain(n);
  }

  /** Takes a node's output after any input: frames onto the network, events to listeners, the next wake-up. */
  private drain(n: SimNode): void {
    const core = n.core;
    for (let t = core.pollTransmit(); t !== undefined; t = core.pollTransmit()) {
      if (!n.up) continue;
      if (t.stream) n.counters.streamsOut++;
      else n.counters.packetsOut++;
      n.counters.bytesOut += t.bytes.length;
      this.send({ from: n.addr, to: t.addr, bytes: t.bytes, kind: t.stream ? 'stream' : 'datagram' });
    }
    for (let e = core.pollEvent(); e !== undefined; e = core.pollEvent()) {
      if (this.keepEvents) n.events.push({ atMs: this.nowMs, event: e });
      for (const listener of this.listeners) listener(n, e, this.nowMs);
    }
    if (!n.up) return;
    const deadline = core.pollTimeoutMs();
    if (deadline === undefined) return;
    const at = Math.max(this.nowMs, deadline) + n.slowMs;
    if (n.wake !== undefined) {
      if (n.wake.deadlineMs === at) return;
      n.wake.cancelled = true;
    }
    n.wake = this.heap.schedule(at, { kind: 'wake', node: n });
  }

  private send(frame: Frame): void {
    this.trace?.push({ ...frame, atMs: this.nowMs });
    for (const delay of this.network.deliveries(frame)) {
      this.heap.schedule(this.nowMs + delay, { kind: 'deliver', frame, slowed: false });
    }
  }
}
