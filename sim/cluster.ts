/**
 * SimulatedCluster: a Simulation whose members each have a Catalog, built the first time it is
 * used, so `grapevine-registry/sim` users can register services and look them up as a process would.
 */
import type { ConfigOptions } from '../src/core/config.js';
import type { Membership } from '../src/core/membership.js';
import { seededRng } from '../src/core/rng.js';
import { Catalog } from '../src/registry/catalog.js';
import type { Health, ServiceDefinition } from '../src/registry/record.js';
import type { ServiceChange } from '../src/registry/registry.js';
import { Simulation, type SimulationOptions } from './engine.js';
import { converged } from './invariants.js';
import type { NetworkOptions } from './network.js';

export interface SimulateOptions {
  /** Members to start, named n0..n{nodes-1}; all join through n0. */
  nodes: number;
  /** Chooses every random draw of the run; the same seed replays the same run. */
  seed: number;
  /** Protocol profile and overrides, as for Grapevine.start ({ profile: 'lan', probeIntervalMs: ... }). */
  config?: ConfigOptions;
  network?: NetworkOptions;
  /** Spread the joins over this much virtual time (default: all at once). */
  joinSpreadMs?: number;
  trace?: boolean;
}

/** What one simulated member knows: its member table and its service catalog. */
export type NodeView = Pick<Membership, 'members' | 'member' | 'healthScore' | 'incarnation' | 'liveMembers' | 'stats'>
  & Pick<Catalog, 'lookup' | 'pick' | 'services' | 'nodeMeta'>;

interface MemberCatalog {
  core: Membership;
  catalog: Catalog;
}

/**
 * A simulated cluster, with a read-only view of any member's table and registry. A member's
 * registry is built the first time it is used (from the member's current table) and then kept
 * current from its events, so clusters that never look up a service pay nothing for it.
 */
export class SimulatedCluster extends Simulation {
  private readonly catalogs = new Map<string, MemberCatalog>();
  private readonly serviceListeners = new Set<(node: string, change: ServiceChange, nowMs: number) => void>();

  constructor(options: SimulationOptions) {
    super(options);
    this.onEvent((n, e) => {
      const c = this.catalogs.get(n.name);
      if (c !== undefined && c.core === n.core) c.catalog.handleEvent(e);
    });
  }

  /** What member `name` knows: `members()`, `member(other)`, `lookup(service)`, `pick(service)` ... */
  view(name: string): NodeView {
    const { core, catalog } = this.catalog(name);
    return {
      members: () => core.members(), member: (other) => core.member(other),
      get healthScore() { return core.healthScore; }, get incarnation() { return core.incarnation; },
      get liveMembers() { return core.liveMembers; }, get stats() { return core.stats; },
      lookup: (service, filter) => catalog.lookup(service, filter), pick: (service, options) => catalog.pick(service, options),
      services: () => catalog.services(), nodeMeta: (node) => catalog.nodeMeta(node),
    };
  }

  /**
   * Calls `listener` whenever any member's registry changes (an instance added, updated or
   * removed as that member sees it). Members whose registry is not built yet are not reported:
   * call `view(name)` first for each member to follow.
   */
  onService(listener: (node: string, change: ServiceChange, nowMs: number) => void): () => void {
    this.serviceListeners.add(listener);
    return () => void this.serviceListeners.delete(listener);
  }

  /** Registers a service instance on member `name` (as its process would); returns the instance id. */
  register(name: string, service: ServiceDefinition): string {
    let id = '';
    this.command(name, (_core, now) => {
      id = this.catalog(name).catalog.register(now, service);
    });
    return id;
  }

  deregister(name: string, id: string): boolean {
    let found = false;
    this.command(name, (_core, now) => {
      found = this.catalog(name).catalog.deregister(now, id);
    });
    return found;
  }

  /** Sets an instance's health on its owner, as a health check would. */
  setHealth(name: string, id: string, health: Health): void {
    this.command(name, (_core, now) => this.catalog(name).catalog.setHealth(now, id, health));
  }

  private catalog(name: string): MemberCatalog {
    const core = this.node(name).core;
    let c = this.catalogs.get(name);
    if (c === undefined || c.core !== core) { // first use, or the member restarted
      const catalog = new Catalog(core, { rng: seededRng((this.seed ^ hashName(name)) >>> 0) });
      catalog.onChange((change) => {
        for (const listener of this.serviceListeners) listener(name, change, this.nowMs);
      });
      catalog.load(core.members());
      c = { core, catalog };
      this.catalogs.set(name, c);
    }
    return c;
  }

  /** True when every running member sees exactly the running members alive, and nothing else alive. */
  converged(): boolean {
    return converged(this);
  }
}

function hashName(name: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < name.length; i++) h = Math.imul(h ^ name.charCodeAt(i), 0x01000193);
  return h >>> 0;
}

/** Builds a cluster of `nodes` members that join through n0, ready to run. */
export function simulate(options: SimulateOptions): SimulatedCluster {
  const sim: SimulationOptions = { seed: options.seed };
  if (options.config !== undefined) sim.config = options.config;
  if (options.network !== undefined) sim.network = options.network;
  if (options.trace !== undefined) sim.trace = options.trace;
  const cluster = new SimulatedCluster(sim);
  cluster.startCluster(options.nodes, options.joinSpreadMs ?? 0);
  return cluster;
}
