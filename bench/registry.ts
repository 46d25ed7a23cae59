/**
 * Registry figures: lookup and pick against a raw Map.get (+ a round-robin index, or a random
 * index from the same generator) over the same instances in the same run, lookups with a tag
 * filter, record updates, memory per instance, and watch fan-out.
 */
import type { MemberInfo } from '../src/core/members.js';
import { randomInt, seededRng } from '../src/core/rng.js';
import { encodeRecord, type ServiceRecord } from '../src/registry/record.js';
import { type Instance, Registry } from '../src/registry/registry.js';
import { watchService } from '../src/registry/watch.js';
import { compare, fmt, table } from './util.js';

const NODES = 1_000;
const SERVICES = 200;
const PER_NODE = 4; // 4,000 instances, 20 per service

function recordOf(node: number): ServiceRecord[] {
  return Array.from({ length: PER_NODE }, (_, k) => {
    const svc = (node * PER_NODE + k) % SERVICES;
    return {
      id: `i-${node}-${k}`, name: `svc-${svc}`, address: '', port: 8_000 + k, tags: k % 2 === 0 ? ['v1', 'eu'] : ['v2'],
      meta: { build: String(node % 3) }, weight: 1, health: node % 7 === 0 ? 'critical' : 'passing', checks: [], taggedAddresses: {}, warningWeight: 1,
    };
  });
}

function member(node: number, services: ServiceRecord[], version = 1): MemberInfo {
  return {
    name: `node-${node}`, addr: `10.0.${node >> 8}.${node & 255}:7946`, record: encodeRecord({ meta: {}, services }),
    version, incarnation: 1, state: 'alive', stateChangeMs: 0,
  };
}

function build(nodes: number): Registry {
  const r = new Registry({ rng: seededRng(1) });
  for (let n = 0; n < nodes; n++) r.applyMember(member(n, recordOf(n)));
  return r;
}

export async function benchRegistry(): Promise<void> {
  const registry = build(NODES);
  // The baseline: the same instances in a plain Map, and the cheapest possible round-robin.
  const raw = new Map<string, Instance[]>();
  for (const name of registry.services()) raw.set(name, [...registry.lookup(name)]);
  const names = registry.services();
  let i = 0;
  let cursor = 0;
  let sink = 0;
  const rng = seededRng(2);
  const next = (): string => names[(i = (i + 1) % names.length)] as string;
  const results = compare({
    'raw Map.get': () => {
      sink += (raw.get(next()) as Instance[]).length;
    },
    'lookup(name)': () => {
      sink += registry.lookup(next()).length;
    },
    'lookup(name, { healthy })': () => {
      sink += registry.lookup(next(), { healthy: true }).length;
    },
    'raw Map.get + round-robin': () => {
      const list = raw.get(next()) as Instance[];
      sink += (list[(cursor = (cursor + 1) % 0x4000_0000) % list.length] as Instance).port;
    },
    'pick(name) round-robin': () => {
      sink += (registry.pick(next()) as Instance).port;
    },
    'raw Map.get + random': () => {
      const list = raw.get(next()) as Instance[];
      sink += (list[randomInt(rng, list.length)] as Instance).port;
    },
    'pick(name, random)': () => {
      sink += (registry.pick(next(), { strategy: 'random' }) as Instance).port;
    },
    'pick(name, weighted)': () => {
      sink += (registry.pick(next(), { strategy: 'weighted' }) as Instance).port;
    },
    'raw filter by tag': () => {
      sink += (raw.get(next()) as Instance[]).filter((x) => x.tags.includes('v2')).length;
    },
    'lookup(name, { tags })': () => {
      sink += registry.lookup(next(), { tags: ['v2'] }).length;
    },
  });
  const ratio = (name: string, base: string): string => ((results[name] as number) / (results[base] as number)).toFixed(2);
  console.log(`\n## registry: ${NODES} members, ${SERVICES} services, ${NODES * PER_NODE} instances`);
  console.log(table([
    ['operation', 'ops/s', 'ratio', 'baseline'],
    ...[
      ['raw Map.get', 'raw Map.get'], ['lookup(name)', 'raw Map.get'], ['lookup(name, { healthy })', 'raw Map.get'],
      ['raw Map.get + round-robin', 'raw Map.get + round-robin'], ['pick(name) round-robin', 'raw Map.get + round-robin'],
      ['raw Map.get + random', 'raw Map.get + random'], ['pick(name, random)', 'raw Map.get + random'],
      ['pick(name, weighted)', 'raw Map.get + random'],
      ['raw filter by tag', 'raw filter by tag'], ['lookup(name, { tags })', 'raw filter by tag'],
    ].map(([name, base]) => [name as string, fmt(results[name as string] as number), ratio(name as string, base as string), base as string]),
  ]));

  // Updates: one member's record changes (one instance's health flips).
  let version = 2;
  const updates = compare({
    'apply a changed record (4 instances)': () => {
      const n = version % NODES;
      const services = recordOf(n).map((s, k) => (k === 0 ? { ...s, health: version % 2 === 0 ? 'warning' as const : 'passing' as const } : s));
      registry.applyMember(member(n, services, version++));
    },
  }, 3);
  console.log(`record updates applied: ${fmt(updates['apply a changed record (4 instances)'] as number)}/s (decode + diff + index)`);

  // Memory per instance: heap growth of a registry with 100,000 instances.
  globalThis.gc?.();
  const before = process.memoryUsage().heapUsed;
  const big = build(25_000);
  globalThis.gc?.();
  const perInstance = (process.memoryUsage().heapUsed - before) / big.size;
  console.log(`memory: ${fmt(perInstance)} bytes per instance (${fmt(big.size)} instances on 25,000 members, record bytes included)`);

  // Watch fan-out: 1,000 watchers of one service, 200 changes each.
  const watchers = 1_000;
  const changes = 200;
  const w = build(10);
  const target = 'svc-0';
  const its = Array.from({ length: watchers }, () => watchService(w, target, { initial: false }));
  const t0 = performance.now();
  const consumed = its.map(async (it) => {
    let n = 0;
    for await (const _ of it) if (++n === changes) break;
    return n;
  });
  for (let v = 0; v < changes; v++) {
    const services = recordOf(0).map((s) => ({ ...s, port: 9_000 + v }));
    w.applyMember(member(0, services, 100 + v));
    if (v % 20 === 0) await new Promise((r) => setImmediate(r));
  }
  const delivered = (await Promise.all(consumed)).reduce((a, b) => a + b, 0);
  const ms = performance.now() - t0;
  console.log(`watch fan-out: ${watchers} watchers x ${changes} changes = ${fmt(delivered)} deliveries in ${fmt(ms)} ms (${fmt(delivered / (ms / 1000))}/s)`);
  if (sink === -1) console.log(sink);
}
