/**
 * `npm run bench:memory`: RSS and heap of a bare node process, of one that imports the built
 * package, and of one running a member, each measured in a fresh process 2 s after start and
 * after a GC. Uses dist/ (the script builds it first), as users get it.
 */
import { execFileSync } from 'node:child_process';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { fmt, table } from './util.js';

const entry = pathToFileURL(join(import.meta.dirname, '..', 'dist', 'src', 'index.js')).href;
const script = (mode: string): string => `
const mode = ${JSON.stringify(mode)};
let gv;
if (mode !== 'bare') {
  const { Grapevine } = await import(${JSON.stringify(entry)});
  if (mode === 'member') gv = await Grapevine.start({ bind: '127.0.0.1:0' });
}
await new Promise((r) => setTimeout(r, 2000));
globalThis.gc();
const m = process.memoryUsage();
console.log(JSON.stringify({ rss: m.rss, heap: m.heapUsed }));
await gv?.close();
`;

const rows: (string | number)[][] = [['process', 'RSS MB', 'heap MB', 'RSS over bare MB']];
let bare = 0;
for (const mode of ['bare', 'import', 'member']) {
  const out = JSON.parse(execFileSync(process.execPath, ['--expose-gc', '--input-type=module', '-e', script(mode)], { encoding: 'utf8', timeout: 30_000 })) as { rss: number; heap: number };
  if (mode === 'bare') bare = out.rss;
  rows.push([mode, fmt(out.rss / 1e6, 1), fmt(out.heap / 1e6, 1), fmt((out.rss - bare) / 1e6, 1)]);
}
console.log(`\n## memory (node ${process.version})`);
console.log(table(rows));
