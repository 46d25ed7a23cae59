/**
 * `npm run bench:memory`: RSS and heap of a bare node process, of one that loads an empty
 * application module (what any app file costs), of one that imports the built package, and of
 * one running a member (without and with a keyring; and from tsc's one-file-per-module output
 * rather than the bundle the package exports), each in a fresh process 2 s after start and after
 * a GC, medians of 3 interleaved rounds. Uses dist/ (the script builds it first).
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { fmt, median, table } from './util.js';

// What `import 'grapevine-registry'` loads (package.json exports): the bundle; and tsc's output, one file per module.
const entry = pathToFileURL(join(import.meta.dirname, '..', 'dist', 'bundle', 'src', 'index.js')).href;
const modules = pathToFileURL(join(import.meta.dirname, '..', 'dist', 'src', 'index.js')).href;
// An application is itself a module file: loading the first one costs Node ~1.7 MB of its own.
const appFile = join(mkdtempSync(join(tmpdir(), 'grapevine-memory-')), 'app.mjs');
writeFileSync(appFile, 'export const app = 1;\n');
const script = (mode: string): string => `
const mode = ${JSON.stringify(mode)};
let gv;
if (mode !== 'bare') await import(${JSON.stringify(pathToFileURL(appFile).href)});
if (mode !== 'bare' && mode !== 'bare app') {
  const { Grapevine } = await import(${JSON.stringify(mode.includes('modules') ? modules : entry)});
  if (mode.startsWith('member') && !mode.includes('keyring')) gv = await Grapevine.start({ bind: '127.0.0.1:0' });
  if (mode === 'member, keyring') gv = await Grapevine.start({ bind: '127.0.0.1:0', keyring: [new Uint8Array(32).fill(7)] });
}
await new Promise((r) => setTimeout(r, 2000));
globalThis.gc();
const m = process.memoryUsage();
console.log(JSON.stringify({ rss: m.rss, heap: m.heapUsed }));
await gv?.close();
`;

const MODES = ['bare', 'bare app', 'import', 'member', 'member, keyring', 'member, unbundled modules'];
const ROUNDS = 3;
const samples = new Map<string, { rss: number; heap: number }[]>();
// Interleaved rounds, medians: RSS wobbles by a few hundred kB from run to run.
for (let r = 0; r < ROUNDS; r++) {
  for (const mode of MODES) {
    const out = JSON.parse(execFileSync(process.execPath, ['--expose-gc', '--input-type=module', '-e', script(mode)], { encoding: 'utf8', timeout: 30_000 })) as { rss: number; heap: number };
    samples.set(mode, [...(samples.get(mode) ?? []), out]);
  }
}
const mid = (mode: string, key: 'rss' | 'heap'): number => median((samples.get(mode) ?? []).map((x) => x[key]));
const rows: (string | number)[][] = [['process', 'RSS MB', 'heap MB', 'RSS over bare MB', 'RSS over bare app MB']];
for (const mode of MODES) {
  rows.push([mode, fmt(mid(mode, 'rss') / 1e6, 1), fmt(mid(mode, 'heap') / 1e6, 1), fmt((mid(mode, 'rss') - mid('bare', 'rss')) / 1e6, 1), fmt((mid(mode, 'rss') - mid('bare app', 'rss')) / 1e6, 1)]);
}
rmSync(dirname(appFile), { recursive: true, force: true });
console.log(`\n## memory (node ${process.version})`);
console.log(table(rows));
