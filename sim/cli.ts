/**
 * `npm run sim -- --scenario crash --nodes 1000 --seconds 300 --loss 0.02 --seed 7`
 * Runs a scenario, prints its seed and a summary, writes sim-results/<scenario>-<seed>.json and
 * .html. `--compare lifeguard=true,false` runs the same seed once per value, side by side.
 * Any protocol parameter can be set as a flag (`--probeIntervalMs 500`); so can the network's
 * (`--latencyMs 2`, `--jitterMs 3`, `--dup 0.01`, `--reorder 0.05`, `--mtu 1200`), and a
 * scenario's own knobs (`--count 5`, `--fraction 0.05`, `--durationS 30`).
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { PROFILES, type ConfigOptions, type ProfileName } from '../src/core/config.js';
import type { NetworkOptions } from './network.js';
import { renderHtml, replayCommand, summaryRows } from './report.js';
import { runScenario, type RunResult } from './run.js';
import { SCENARIOS, type ScenarioParams } from './scenarios/index.js';

const CONFIG_KEYS = new Set(Object.keys(PROFILES.lan));
const NETWORK_FLAGS = new Set(['latencyMs', 'jitterMs', 'tailSigma', 'dup', 'reorder', 'mtu', 'streamFailure']);
const CORE_FLAGS = new Set(['scenario', 'nodes', 'seconds', 'loss', 'seed', 'profile', 'compare', 'out', 'check']);

function parseFlags(argv: string[]): Map<string, string> {
  const flags = new Map<string, string>();
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i] as string;
    if (!a.startsWith('--')) throw new Error(`unexpected argument ${a}`);
    const eq = a.indexOf('=');
    if (eq > 0) flags.set(a.slice(2, eq), a.slice(eq + 1));
    else {
      const v = argv[i + 1];
      if (a === '--check' && (v === undefined || v.startsWith('--'))) {
        flags.set('check', 'true');
        continue;
      }
      if (v === undefined || v.startsWith('--')) throw new Error(`${a} needs a value`);
      flags.set(a.slice(2), v);
      i++;
    }
  }
  return flags;
}

function parseValue(v: string): number | boolean {
  if (v === 'true' || v === 'false') return v === 'true';
  const n = Number(v);
  if (!Number.isFinite(n)) throw new Error(`expected a number or true/false, got ${v}`);
  return n;
}

export function paramsFromFlags(flags: Map<string, string>): { scenario: string; params: ScenarioParams; compare?: [string, string[]]; out: string; check: boolean } {
  const scenario = flags.get('scenario') ?? 'crash';
  if (SCENARIOS[scenario] === undefined) throw new Error(`unknown scenario ${scenario}; one of ${Object.keys(SCENARIOS).join(', ')}`);
  const config: ConfigOptions = { profile: (flags.get('profile') ?? 'lan') as ProfileName };
  const network: NetworkOptions = {};
  const options: Record<string, string> = {};
  for (const [k, v] of flags) {
    if (CORE_FLAGS.has(k)) continue;
    if (CONFIG_KEYS.has(k)) (config as Record<string, unknown>)[k] = parseValue(v);
    else if (NETWORK_FLAGS.has(k)) {
      const n = Number(v);
      if (k === 'dup') network.duplicateRate = n;
      else if (k === 'reorder') network.reorderRate = n;
      else if (k === 'mtu') network.mtuBytes = n;
      else if (k === 'streamFailure') network.streamFailureRate = n;
    } else options[k] = v;
  }
  const latencyMs = Number(flags.get('latencyMs') ?? 1);
  const jitterMs = flags.get('jitterMs');
  const tailSigma = flags.get('tailSigma');
  network.latency = tailSigma !== undefined ? { medianMs: latencyMs, sigma: Number(tailSigma) }
    : jitterMs !== undefined ? { minMs: latencyMs, maxMs: latencyMs + Number(jitterMs) } : latencyMs;
  network.lossRate = Number(flags.get('loss') ?? 0);
  const seed = Number(flags.get('seed') ?? Math.floor(Math.random() * 2 ** 31));
  const nodes = Number(flags.get('nodes') ?? 100);
  const seconds = Number(flags.get('seconds') ?? 120);
  if (!Number.isInteger(nodes) || nodes < 2) throw new Error('--nodes must be an integer >= 2');
  if (!(seconds > 0)) throw new Error('--seconds must be positive');
  let compare: [string, string[]] | undefined;
  const c = flags.get('compare');
  if (c !== undefined) {
    const [key, values] = c.split('=');
    if (key === undefined || values === undefined || !CONFIG_KEYS.has(key)) throw new Error('--compare wants key=v1,v2 with a protocol parameter as key');
    compare = [key, values.split(',')];
  }
  return {
    scenario, params: { nodes, seconds, seed, config, network, options }, out: flags.get('out') ?? 'sim-results', check: flags.get('check') === 'true',
    ...(compare !== undefined ? { compare } : {}),
  };
}

function main(): void {
  const { scenario, params, compare, out, check } = paramsFromFlags(parseFlags(process.argv.slice(2)));
  const s = SCENARIOS[scenario]!;
  console.log(`scenario ${scenario} — ${s.summary}`);
  console.log(`seed ${params.seed}: ${params.nodes} nodes, ${params.seconds} s virtual, profile ${params.config.profile}`);
  const runs: RunResult[] = [];
  // Large runs take minutes: say where they are, on stderr so the summary stays clean.
  const progress = params.nodes >= 2_000
    ? (virtualMs: number, wallMs: number, rss: number): void => void process.stderr.write(
      `  ${(virtualMs / 1000).toFixed(0)} s virtual after ${(wallMs / 1000).toFixed(0)} s wall, RSS ${(rss / 2 ** 30).toFixed(1)} GB\n`)
    : undefined;
  if (compare === undefined) runs.push(runScenario(s, params, s.name, progress, check));
  else {
    for (const v of compare[1]) {
      runs.push(runScenario(s, { ...params, config: { ...params.config, [compare[0]]: parseValue(v) } }, `${compare[0]}=${v}`, progress, check));
    }
  }
  const labels = runs.map((r) => r.label);
  const width = Math.max(...summaryRows(runs[0]!).map(([k]) => k.length));
  console.log(`\n${''.padEnd(width)}  ${labels.join('  |  ')}`);
  summaryRows(runs[0]!).forEach(([k], i) => console.log(`${k.padEnd(width)}  ${runs.map((r) => summaryRows(r)[i]?.[1]).join('  |  ')}`));
  mkdirSync(out, { recursive: true });
  const base = join(out, `${scenario}-${params.seed}${compare !== undefined ? `-${compare[0]}` : ''}`);
  writeFileSync(`${base}.json`, JSON.stringify(runs, null, 1));
  writeFileSync(`${base}.html`, renderHtml(runs));
  console.log(`\nwrote ${base}.json and ${base}.html\nreplay: ${replayCommand(runs[0]!)}`);
  if (!check) return;
  for (const r of runs) {
    const inv = r.invariants!;
    if (inv.violations === 0) {
      console.log(`invariants (${r.label}): ${inv.checks} checks, every event checked, no violation`);
      continue;
    }
    const lines = inv.first.map((v) => `  ${v.atMs} ms  ${v.invariant}: ${v.detail}`);
    console.log(`invariants (${r.label}): ${inv.violations} violation(s), seed ${params.seed}\n${lines.join('\n')}\nreplay: ${replayCommand(r)}`);
    process.exitCode = 1;
  }
}

main();
