/**
 * `npm run sim:figures`: the simulator's headline figures, for notes. Speed (1,000 nodes for
 * 10 virtual minutes), Lifeguard on against off under stalls and starvation, and how detection time and
 * per-node load grow with cluster size. `--sizes 100,1000,3000` sets the scale-law sizes.
 */
import { parseArgs } from 'node:util';
import type { RunResult } from './run.js';
import { runScenario } from './run.js';
import { SCENARIOS, type ScenarioParams } from './scenarios/index.js';

const { values } = parseArgs({ options: { sizes: { type: 'string', default: '100,1000' }, seed: { type: 'string', default: '7' } } });
const seed = Number(values.seed);
const sizes = (values.sizes ?? '').split(',').map(Number);

function params(nodes: number, seconds: number, extra: Partial<ScenarioParams> = {}): ScenarioParams {
  return { nodes, seconds, seed, config: { profile: 'lan' }, network: { latency: { minMs: 0.5, maxMs: 2 } }, options: {}, ...extra };
}

function mb(bytes: number): string {
  return `${(bytes / 2 ** 20).toFixed(0)} MB`;
}

function cost(r: RunResult): string {
  return `${(r.wallMs / 1000).toFixed(1)} s wall, ${(r.events / 1e6).toFixed(2)}M events, ${(r.eventsPerWallSecond / 1000).toFixed(0)}k events/s, peak RSS ${mb(r.peakRssBytes)}`;
}

console.log(`grapevine simulator figures, seed ${seed}, node ${process.version}\n`);

// 1. Speed.
const speed = runScenario(SCENARIOS.crash!, params(1_000, 600));
console.log(`## speed: 1,000 nodes, 600 s virtual, LAN, crash scenario\n${cost(speed)}`);
console.log(`memory per member entry: ${speed.metrics.memory.heapBytesPerMember?.toFixed(0) ?? 'n/a'} bytes\n`);

// 2. Lifeguard on and off, same seed, 5% of 200 nodes stalling 1-3 s again and again.
for (const [label, config] of [
  ['LAN defaults', { profile: 'lan' as const }],
  ['probe interval 200 ms (suspicion timeout below the stalls)', { profile: 'lan' as const, probeIntervalMs: 200, probeTimeoutMs: 100 }],
] as const) {
  console.log(`## Lifeguard, pauses scenario, 200 nodes, 300 s, ${label}`);
  for (const lifeguard of [true, false]) {
    const r = runScenario(SCENARIOS.pauses!, params(200, 300, { config: { ...config, lifeguard } }));
    const m = r.metrics;
    console.log(`lifeguard ${lifeguard ? 'on ' : 'off'}: false suspicions ${m.falseSuspicions.events} (${m.falseSuspicions.members} members), `
      + `deaths of running members ${m.falseDeaths.events} (${m.falseDeaths.members} members), of healthy members ${m.falseDeathsHealthy.events}, `
      + `${m.traffic.messagesPerNodePerS.mean.toFixed(2)} msgs/node/s`);
  }
  console.log('');
}

// 2b. Lifeguard's own case: 5% of nodes read their input 800 ms late (starved), so they accuse healthy ones.
console.log('## Lifeguard, slow scenario, 200 nodes, 300 s, LAN: 5% of nodes read input 800 ms late');
for (const lifeguard of [true, false]) {
  const m = runScenario(SCENARIOS.slow!, params(200, 300, { config: { profile: 'lan', lifeguard } })).metrics;
  console.log(`lifeguard ${lifeguard ? 'on ' : 'off'}: false suspicions ${m.falseSuspicions.events} (${m.falseSuspicions.members} members), `
    + `deaths of healthy members ${m.falseDeathsHealthy.events}, ${m.traffic.messagesPerNodePerS.mean.toFixed(2)} msgs/node/s`);
}
console.log('');

// 3. Scale law: steady-state load per node and crash detection time against N.
console.log('## scale law: crash scenario, LAN, 1% of nodes crash after a 120 s warm-up');
console.log('nodes  steady msgs/node/s  steady bytes/node/s  first suspicion p50  all agree dead p50  suspicion min (s)  wall');
for (const n of sizes) {
  const r = runScenario(SCENARIOS.crash!, params(n, 180, { options: { warmupS: '120' } }));
  // Steady state: the minute before the crash, long after the joins settled.
  const window = r.metrics.samples.filter((s) => s.tMs > 60_000 && s.tMs <= 120_000);
  const avg = (pick: (s: (typeof window)[number]) => number): number => window.reduce((a, s) => a + pick(s), 0) / Math.max(1, window.length);
  const d = r.metrics.detection;
  console.log(`${String(n).padStart(5)}  ${avg((s) => s.messagesPerNodePerS).toFixed(2).padStart(18)}  ${avg((s) => s.bytesPerNodePerS).toFixed(0).padStart(19)}  `
    + `${(d.firstSuspect.p50 / 1000).toFixed(2).padStart(18)}s  ${(d.allDead.p50 / 1000).toFixed(2).padStart(17)}s  `
    + `${(4 * Math.max(1, Math.log10(n))).toFixed(1).padStart(17)}  ${(r.wallMs / 1000).toFixed(0)} s, peak RSS ${mb(r.peakRssBytes)}`);
}
