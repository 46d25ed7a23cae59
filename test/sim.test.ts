/**
 * The simulator as users and CI use it: the example in docs/simulator.md, fixed-seed scenarios with asserted
 * bounds, and fast-check-generated fault schedules checked for safety and convergence.
 */
import { test as propTest } from '@fast-check/vitest';
import fc from 'fast-check';
import { describe, expect, test } from 'vitest';
import { type Frame, Network, runScenario, SCENARIOS, simulate, type ScenarioParams } from '../sim/index.js';
import { seededRng } from '../src/core/rng.js';
import { decodePacket, encodePacket, MessageType } from '../src/core/wire.js';
import { InvariantChecker } from '../sim/invariants.js';
import { LIMITS } from './arbitraries.js';

describe('grapevine-registry/sim for users', () => {
  // The example from docs/simulator.md, as a user would paste it.
  test('a crashed member is declared dead everywhere; a partition heals', () => {
    const cluster = simulate({ nodes: 20, seed: 42 });
    cluster.runFor(10_000);
    expect(cluster.converged()).toBe(true);

    cluster.crash('n7');
    cluster.runFor(30_000);
    expect(cluster.view('n1').member('n7')?.state).toBe('dead');

    const heal = cluster.partition(['n1', 'n2'], ['n0', 'n3', 'n4', 'n5', 'n6', 'n8', 'n9', 'n10', 'n11', 'n12', 'n13', 'n14', 'n15', 'n16', 'n17', 'n18', 'n19']);
    cluster.runFor(60_000);
    heal();
    expect(cluster.runUntilTrue(() => cluster.converged(), 120_000)).toBe(true);
  });

  // The registry example from docs/simulator.md.
  test('instances follow their member: registered, unhealthy, crashed', () => {
    const cluster = simulate({ nodes: 20, seed: 7, network: { lossRate: 0.01 } });
    cluster.runFor(5_000);
    cluster.register('n3', { name: 'billing', port: 8080, tags: ['v2'] });
    cluster.register('n4', { name: 'billing', port: 8080 });
    cluster.runFor(2_000);
    expect(cluster.view('n9').lookup('billing', { tags: ['v2'] }).map((i) => i.node)).toEqual(['n3']);

    cluster.setHealth('n4', 'billing', 'critical');
    cluster.runFor(2_000);
    expect(cluster.view('n9').pick('billing')?.node).toBe('n3');

    cluster.crash('n3');
    cluster.runFor(30_000);
    expect(cluster.view('n9').pick('billing')).toBeUndefined();
  });

  test('the network model: per-link latency, duplication, and a one-way partition bridged by indirect probes', () => {
    const c = simulate({ nodes: 3, seed: 5, trace: true, network: { duplicateRate: 1 } });
    c.network.setLinkLatency('n1', 'n2', 50);
    c.runFor(5_000);
    const n1n2 = (c.trace ?? []).filter((f) => f.from === 'n1' && f.to === 'n2' && f.kind === 'datagram');
    expect(n1n2.length).toBeGreaterThan(0);
    // Every datagram is delivered twice; the core shrugs duplicates off.
    expect(c.node('n2').counters.packetsIn).toBeGreaterThan(c.node('n1').counters.packetsOut);
    expect(c.converged()).toBe(true);
    // One-way cut: n0 never hears n1 directly. Its probes of n1 fail, and n2 bridges them.
    c.partition(['n1'], ['n0'], true);
    const since = c.trace?.length ?? 0;
    c.runFor(60_000);
    const pingReqs = (c.trace ?? []).slice(since).filter((f) => {
      const r = f.from === 'n0' && f.kind === 'datagram' ? decodePacket(f.bytes, LIMITS) : undefined;
      return r?.ok === true && r.messages.some((m) => m.type === MessageType.PingReq && m.target === 'n1');
    });
    expect(pingReqs.length).toBeGreaterThan(0);
    expect(c.view('n0').member('n1')?.state).toBe('alive');
    expect(c.view('n2').member('n1')?.state).toBe('alive');
    expect(c.view('n0').member('n1')?.incarnation).toBe(c.view('n1').incarnation);
  });

  test('network: oversized datagrams are dropped, streams are not; loss and partitions drop', () => {
    const net = new Network(seededRng(1), { mtuBytes: 100, lossRate: 0 });
    const frame = (size: number, kind: 'datagram' | 'stream'): Frame => ({ from: 'a', to: 'b', bytes: new Uint8Array(size), kind });
    expect(net.deliveries(frame(100, 'datagram'))).toHaveLength(1);
    expect(net.deliveries(frame(101, 'datagram'))).toHaveLength(0);
    expect(net.deliveries(frame(5_000, 'stream'))).toHaveLength(1);
    const heal = net.partition(['a'], ['b'], true);
    expect(net.deliveries(frame(10, 'datagram'))).toHaveLength(0);
    expect(net.deliveries({ ...frame(10, 'datagram'), from: 'b', to: 'a' })).toHaveLength(1);
    heal();
    net.setLossRate(1);
    expect(net.deliveries(frame(10, 'datagram'))).toHaveLength(0);
  });

  test('a bootstrapped cluster starts converged and detects a crash (seed 6)', () => {
    const r = runScenario(SCENARIOS.crash!, params(300, 60, 6, { options: { bootstrap: 'true', warmupS: '10', count: '2' } }));
    expect(r.metrics.samples[0]?.viewAccuracy, 'seed 6').toBe(1);
    expect(r.metrics.detection.allDead.count, 'seed 6').toBe(2);
    expect(r.metrics.falseDeaths.events, 'seed 6').toBe(0);
  });

  test('the same seed replays the same run', () => {
    const fingerprint = (seed: number): string => {
      const c = simulate({ nodes: 10, seed, network: { lossRate: 0.05 } });
      c.runFor(5_000);
      c.crash('n3');
      c.runFor(20_000);
      return JSON.stringify([...c.nodes.values()].map((n) => [n.counters, n.core.members().map((m) => [m.name, m.state, m.incarnation])]));
    };
    expect(fingerprint(9)).toBe(fingerprint(9));
    expect(fingerprint(9)).not.toBe(fingerprint(10));
  });
});

function params(nodes: number, seconds: number, seed: number, extra: Partial<ScenarioParams> = {}): ScenarioParams {
  return { nodes, seconds, seed, config: { profile: 'lan' }, network: { latency: { minMs: 1, maxMs: 5 } }, options: {}, ...extra };
}

describe('CI scenarios (fixed seeds, asserted bounds)', () => {
  test('Lifeguard: starved members that read input late accuse far fewer healthy ones with it on (seed 105)', () => {
    const run = (lifeguard: boolean) => runScenario(SCENARIOS.slow!, params(100, 90, 105, { config: { profile: 'lan', lifeguard }, options: { warmupS: '20' } })).metrics;
    const on = run(true);
    const off = run(false);
    expect(off.falseSuspicions.events, 'seed 105: the scenario must provoke false suspicions without Lifeguard').toBeGreaterThan(100);
    expect(on.falseSuspicions.events * 4, `seed 105: on ${on.falseSuspicions.events}, off ${off.falseSuspicions.events}`).toBeLessThanOrEqual(off.falseSuspicions.events);
    expect(on.falseDeathsHealthy.events, 'seed 105').toBe(0);
  });

  test('join: 200 nodes, every join reaches everyone within 3 s (seed 101)', () => {
    const r = runScenario(SCENARIOS.join!, params(200, 30, 101));
    expect(r.metrics.joins.count, 'seed 101').toBe(200);
    expect(r.metrics.joins.p99, 'seed 101').toBeLessThan(3_000);
    expect(r.metrics.falseSuspicions.events, 'seed 101').toBe(0);
  });

  test('crash: 150 nodes, 2% loss, three crashes detected by all; no false death (seed 102)', () => {
    const r = runScenario(SCENARIOS.crash!, params(150, 90, 102, { options: { count: '3' }, network: { latency: { minMs: 1, maxMs: 5 }, lossRate: 0.02 } }));
    expect(r.metrics.detection.allDead.count, 'seed 102').toBe(3);
    // LAN at 150 members: the suspicion timeout is 2.7 s to 16.2 s (3 s pause tolerance); confirmations bring it to the minimum.
    expect(r.metrics.detection.allDead.max, 'seed 102').toBeLessThan(20_000);
    expect(r.metrics.falseDeaths.events, 'seed 102').toBe(0);
  });

  test('pauses: 100 nodes, 5% stall for 1-3 s again and again; nobody is declared dead (seed 103)', () => {
    const r = runScenario(SCENARIOS.pauses!, params(100, 120, 103));
    expect(r.metrics.falseDeaths.events, 'seed 103').toBe(0);
  });

  test('pause tolerance 3 s: 30 nodes at 10% loss, a fifth stalled for exactly 3 s again and again; no false death where the memberlist bounds have one, and a crash found sooner (seeds 2, 6, 9)', () => {
    const network = { latency: { minMs: 1, maxMs: 5 }, lossRate: 0.1 };
    const stalls = (pauseToleranceMs: number, seed: number) => runScenario(SCENARIOS.pauses!, params(30, 150, seed, {
      config: { profile: 'lan', pauseToleranceMs }, network, options: { fraction: '0.2', stallMinMs: '3000', stallMaxMs: '3000' },
    })).metrics;
    const crash = (pauseToleranceMs: number, seed: number) => runScenario(SCENARIOS.crash!, params(30, 60, seed, { config: { profile: 'lan', pauseToleranceMs }, network, options: { count: '1' } })).metrics.detection.allDead;
    for (const seed of [2, 6, 9]) {
      // These seeds were picked because memberlist's bounds (pauseToleranceMs 0) lose a stalled member in them.
      expect(stalls(0, seed).falseDeaths.events, `seed ${seed}: memberlist's bounds must lose one here`).toBeGreaterThan(0);
      const tolerant = stalls(3_000, seed);
      expect(tolerant.falseDeaths.events, `seed ${seed}`).toBe(0);
      expect(tolerant.falseSuspicions.events, `seed ${seed}: the stalls must provoke suspicions`).toBeGreaterThan(0);
      const fast = crash(3_000, seed);
      const standard = crash(0, seed);
      expect(fast.count, `seed ${seed}`).toBe(1);
      expect(fast.max, `seed ${seed}: ${fast.max} vs ${standard.max} ms`).toBeLessThan(standard.max);
    }
  });

  test('partition: 60 nodes, a fifth cut off for 40 s, then everyone converges (seed 104)', () => {
    const r = runScenario(SCENARIOS.partition!, params(60, 150, 104, { options: { durationS: '40' } }));
    const last = r.metrics.samples.at(-1);
    expect(last?.viewAccuracy, 'seed 104').toBe(1);
    expect(last?.staleMembers, 'seed 104').toBe(0);
  });
});

/** A generated fault schedule for a small cluster: one fault every few seconds, then healing. */
const fault = fc.oneof(
  fc.record({ kind: fc.constant('crash' as const), node: fc.integer({ min: 1, max: 7 }) }),
  fc.record({ kind: fc.constant('restart' as const), node: fc.integer({ min: 1, max: 7 }) }),
  fc.record({ kind: fc.constant('pause' as const), node: fc.integer({ min: 1, max: 7 }), ms: fc.integer({ min: 100, max: 3_000 }) }),
  fc.record({ kind: fc.constant('loss' as const), rate: fc.double({ min: 0, max: 0.2, noNaN: true }) }),
  fc.record({ kind: fc.constant('partition' as const), nodes: fc.uniqueArray(fc.integer({ min: 0, max: 7 }), { minLength: 1, maxLength: 3 }), ms: fc.integer({ min: 1_000, max: 40_000 }) }),
);

describe('simulation-driven properties', () => {
  propTest.prop([fc.integer({ min: 0, max: 2 ** 31 - 1 }), fc.array(fault, { maxLength: 8 })], { numRuns: 12 })(
    'after the last fault heals and the cluster settles, every live node sees exactly the live nodes alive',
    (seed, schedule) => {
      const c = simulate({ nodes: 8, seed, network: { latency: { minMs: 1, maxMs: 10 } } });
      const invariants = new InvariantChecker(c);
      c.runFor(5_000);
      for (const f of schedule) {
        const name = 'node' in f ? `n${f.node}` : '';
        if (f.kind === 'crash') c.crash(name);
        else if (f.kind === 'restart' && !c.node(name).up) {
          c.restart(name);
          c.join(name, ['n0']);
        } else if (f.kind === 'pause') c.pause(name, f.ms);
        else if (f.kind === 'loss') c.network.setLossRate(f.rate);
        else if (f.kind === 'partition') {
          const cut = f.nodes.map((i) => `n${i}`);
          const heal = c.partition(cut, [...c.nodes.keys()].filter((n) => !cut.includes(n)));
          c.at(c.nowMs + f.ms, heal);
        }
        c.runFor(3_000);
        invariants.check();
      }
      c.network.setLossRate(0);
      c.runFor(45_000); // every partition has healed by now
      // Settling: suspicion max (24 s at this size) plus push-pull's reconnect to dead members (30 s).
      const settled = c.runUntilTrue(() => c.converged(), 120_000);
      const views = c.liveNodes().map((n) => `${n.name}: ${n.core.members().map((m) => `${m.name}=${m.state}`).join(' ')}`);
      expect(settled, `seed ${seed}, schedule ${JSON.stringify(schedule)}\n${views.join('\n')}`).toBe(true);
      expect(invariants.ok, invariants.report(`seed ${seed}, schedule ${JSON.stringify(schedule)}`)).toBe(true);
    },
  );

  propTest.prop([fc.integer({ min: 0, max: 2 ** 31 - 1 }), fc.double({ min: 0, max: 0.05, noNaN: true }), fc.uniqueArray(fc.integer({ min: 1, max: 9 }), { maxLength: 3 })], { numRuns: 10 })(
    'with loss up to 5% and no pauses, no live and reachable node is ever declared dead',
    (seed, lossRate, crashes) => {
      const c = simulate({ nodes: 10, seed, network: { lossRate, latency: { minMs: 1, maxMs: 10 } } });
      const wrongly: string[] = [];
      c.onEvent((observer, e, atMs) => {
        if (e.type === 'dead' && c.node(e.member.name).up) wrongly.push(`${observer.name} declared ${e.member.name} dead at ${atMs} ms`);
      });
      c.runFor(10_000);
      for (const i of crashes) {
        c.crash(`n${i}`);
        c.runFor(5_000);
      }
      c.runFor(60_000);
      expect(wrongly, `seed ${seed}, loss ${lossRate}, crashes ${JSON.stringify(crashes)}`).toEqual([]);
    },
  );
});

describe('healing (issue 11)', () => {
  test('a seed that was down longer than the tombstone time is found again when it restarts (seed 106)', () => {
    const c = simulate({ nodes: 10, seed: 106 });
    c.runFor(10_000);
    expect(c.converged(), 'seed 106').toBe(true);
    c.crash('n0');
    c.runFor(400_000); // everyone declared n0 dead and reaped its tombstone (300 s)
    expect(c.view('n1').member('n0'), 'seed 106: reaped').toBeUndefined();
    c.restart('n0'); // with no seeds of its own, as it first started
    const healed = c.runUntilTrue(() => c.converged(), 30_000);
    expect(healed, `seed 106: ${c.liveNodes().map((n) => `${n.name} sees ${n.core.liveMembers}`).join(', ')}`).toBe(true);
  });

  test('a member that started alone because its seeds were down joins them when they come up (seed 107)', () => {
    const c = simulate({ nodes: 6, seed: 107 });
    c.runFor(10_000);
    c.crash('n0');
    c.addNode('late');
    c.join('late', ['n0']); // nobody answers
    c.runFor(5_000);
    expect(c.view('late').liveMembers, 'seed 107').toBe(1);
    c.restart('n0');
    c.join('n0', ['n1']);
    expect(c.runUntilTrue(() => c.converged(), 40_000), 'seed 107').toBe(true);
  });
});

describe('refutation of a verdict the accused never heard', () => {
  test('a member everyone holds left (a forged leave, without a keyring) hears it on its next ack and refutes within seconds (seed 108)', () => {
    const c = simulate({ nodes: 3, seed: 108 });
    c.runFor(60_000); // past the join-time push-pulls
    const incarnation = c.view('n2').incarnation;
    const forged = encodePacket([{ type: MessageType.Left, node: 'n2', incarnation }]);
    c.inject('n0', 'x', forged);
    c.inject('n1', 'x', forged);
    expect(c.view('n0').member('n2')?.state, 'seed 108').toBe('left');
    // Nobody gossips to a member that left, and acks to it went bare: it learned of the verdict
    // only from its own next push-pull (7.2 s in this run). Its next ping's ack now carries it.
    const healed = c.runUntilTrue(() => ['n0', 'n1'].every((n) => c.view(n).member('n2')?.state === 'alive'), 3_000);
    expect(healed, `seed 108: ${c.view('n0').member('n2')?.state}`).toBe(true);
  });
});
