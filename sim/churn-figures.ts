/**
 * `npm run sim:churn`: the churn scenarios (sim/scenarios/churn.ts) at each size and loss rate,
 * one table row a run, for notes; the rolling restart also as crashes with new addresses.
 * `--sizes 30,300,1000 --loss 0,0.05 --scenarios mass-join,... --seed 1`. Each row names the command that replays it alone. Exits 1 if any run broke an
 * invariant, served a dead instance or had a lookup gap.
 */
import { parseArgs } from 'node:util';
import { replayCommand } from './report.js';
import { runScenario } from './run.js';
import { CHURN_SCENARIOS, churnSeconds } from './scenarios/churn.js';
import type { Scenario, ScenarioParams } from './scenarios/params.js';

const { values } = parseArgs({
  options: {
    sizes: { type: 'string', default: '30,300,1000' },
    loss: { type: 'string', default: '0,0.05' },
    scenarios: { type: 'string', default: CHURN_SCENARIOS.map((s) => s.name).join(',') },
    seed: { type: 'string', default: '1' },
  },
});
const seed = Number(values.seed);
const sizes = (values.sizes ?? '').split(',').map(Number);
const losses = (values.loss ?? '').split(',').map(Number);
const chosen = (values.scenarios ?? '').split(',');
/** Each scenario with its defaults, and the rolling restart also as crashes with new addresses (a rescheduled pod). */
const VARIANTS: { name: string; label: string; options: Record<string, string> }[] = CHURN_SCENARIOS.flatMap((s) => [
  { name: s.name, label: s.name, options: {} as Record<string, string> },
  ...(s.name === 'rolling-restart' ? [{ name: s.name, label: 'rolling-restart --graceful false --newAddress true', options: { graceful: 'false', newAddress: 'true' } }] : []),
]);

const ms = (v: number): string => (Number.isNaN(v) ? '-' : v >= 10_000 ? `${(v / 1000).toFixed(1)} s` : `${Math.round(v)} ms`);

console.log(`grapevine churn scenarios, seed ${seed}, node ${process.version}, LAN profile, 1-5 ms links\n`);
console.log('| scenario | N | loss | changes | dead served | lookup gaps (n / total / max) | new life visible everywhere p50 / p99 / max | events per change per member | all see all after last start | distinct sizes | invariant violations | wall |');
console.log('|---|---|---|---|---|---|---|---|---|---|---|---|');
let failed = false;
const replays: string[] = [];
for (const variant of VARIANTS.filter((v) => chosen.includes(v.name) || chosen.includes(v.label))) {
  const scenario = CHURN_SCENARIOS.find((s) => s.name === variant.name) as Scenario;
  for (const nodes of sizes) {
    for (const lossRate of losses) {
      const base: Omit<ScenarioParams, 'seconds'> = { nodes, seed, config: { profile: 'lan' }, network: { latency: { minMs: 1, maxMs: 5 }, lossRate }, options: variant.options };
      const params: ScenarioParams = { ...base, seconds: churnSeconds(scenario.name, base) };
      const progress = nodes >= 1_000
        ? (virtualMs: number, wallMs: number): void => void process.stderr.write(`  ${variant.label} N=${nodes} loss ${lossRate}: ${(virtualMs / 1000).toFixed(0)} of ${params.seconds} s virtual after ${(wallMs / 1000).toFixed(0)} s\n`)
        : undefined;
      const r = runScenario(scenario, params, variant.label, progress);
      const c = r.metrics.churn;
      if (c === undefined) throw new Error(`${scenario.name} recorded no churn figures`);
      const violations = Object.entries(c.invariantViolations).map(([k, v]) => `${k} ${v}`).join(', ') || 'none';
      if (violations !== 'none' || c.deadInstancesServed > 0 || c.lookupGaps.count > 0) {
        failed = true;
        replays.push(`${replayCommand(r)}\n  ${c.firstViolations.join('\n  ')}`);
      }
      const v = c.visibleEverywhere;
      console.log(`| ${variant.label} | ${nodes} | ${lossRate * 100}% | ${c.changes} | ${c.deadInstancesServed} | ${c.lookupGaps.count} / ${ms(c.lookupGaps.totalMs)} / ${ms(c.lookupGaps.maxMs)} | `
        + `${ms(v.p50)} / ${ms(v.p99)} / ${ms(v.max)}${c.notVisible > 0 ? ` (${c.notVisible} not yet)` : ''} | ${c.eventsPerChange.toFixed(2)} | `
        + `${c.allSeeAllMs === undefined ? 'not reached' : ms(c.allSeeAllMs)} | ${c.distinctClusterSizes} | ${violations} | ${(r.wallMs / 1000).toFixed(0)} s |`);
    }
  }
}
if (failed) {
  console.log(`\nruns to replay:\n${replays.join('\n')}`);
  process.exitCode = 1;
}
