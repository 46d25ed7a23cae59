/**
 * The package as users get it: `npm pack` (which builds through `prepare`), installed into a
 * fresh project in a temporary directory, then used from ESM, from CommonJS, from TypeScript
 * under node16, nodenext (CommonJS), bundler and node10 resolution, through every subpath
 * export and the `grapevine` binary, including `npx grapevine agent` stopped by SIGTERM.
 * Dependencies come from npm's cache (npm ci filled it) or the registry.
 */
import { execFile, spawn } from 'node:child_process';
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';

const run = promisify(execFile);
const ROOT = join(import.meta.dirname, '..');
const TSC = join(ROOT, 'node_modules', 'typescript', 'bin', 'tsc');
const pkg = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { name: string; version: string };
const dir = mkdtempSync(join(tmpdir(), 'grapevine-pack-'));
const app = join(dir, 'app');
let files: string[] = [];

const USE = `
const gv = await Grapevine.start({ name: 'pkg-test', bind: '127.0.0.1:0' });
await gv.register({ name: 'web', port: 8080 });
const found = gv.pick('web');
const url = found?.url('http', '/health');
await gv.close();
const core = new Membership({ name: 'a', addr: '127.0.0.1:1', rng: seededRng(1), nowMs: 0 });
const cluster = simulate({ seed: 1, nodes: 3 });
cluster.runFor(1_000);
console.log(JSON.stringify({ url, core: core.name, sim: cluster.view('n0').members().length }));
`;

beforeAll(async () => {
  const packed = await run('npm', ['pack', '--json', '--pack-destination', dir], { cwd: ROOT, maxBuffer: 16 * 1024 * 1024 });
  const info = JSON.parse(packed.stdout) as { filename: string; files: { path: string }[] }[];
  files = (info[0]?.files ?? []).map((f) => f.path);
  mkdirSync(app);
  writeFileSync(join(app, 'package.json'), JSON.stringify({ name: 'app', private: true, type: 'module' }));
  // undici is an optional peer dependency, needed by the grapevine-registry/undici subpath only.
  await run('npm', ['install', '--no-audit', '--no-fund', '--prefer-offline', join(dir, info[0]?.filename ?? ''), 'undici@7'], { cwd: app, maxBuffer: 16 * 1024 * 1024 });
}, 240_000);

afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe(`the packed ${pkg.name} tarball`, () => {
  test('ships the build, types, README and LICENSE, and no source maps', () => {
    for (const f of ['LICENSE', 'README.md', 'package.json', 'dist/src/index.js', 'dist/src/index.d.ts', 'dist/bundle/src/index.js', 'dist/bundle/src/core/index.js', 'dist/src/core/index.js', 'dist/sim/index.js', 'dist/src/cli/main.js', 'dist/bundle/src/cli/main.js']) {
      expect(files).toContain(f);
    }
    expect(files.filter((f) => f.endsWith('.map'))).toEqual([]);
    expect(files.filter((f) => f.startsWith('test/') || f.startsWith('bench/') || f.startsWith('src/'))).toEqual([]);
  });

  test('ESM: the root, core and sim entry points work', async () => {
    writeFileSync(join(app, 'esm.mjs'), `import { Grapevine, Membership, seededRng } from '${pkg.name}';\nimport { simulate } from '${pkg.name}/sim';\n${USE}`);
    const { stdout } = await run(process.execPath, ['esm.mjs'], { cwd: app });
    expect(JSON.parse(stdout)).toEqual({ url: 'http://127.0.0.1:8080/health', core: 'a', sim: 3 });
  }, 30_000);

  test('the undici subpath balances fetch by service name', async () => {
    writeFileSync(join(app, 'lb.mjs'), `import { createServer } from 'node:http';
import { Grapevine } from '${pkg.name}';
import { createDispatcher } from '${pkg.name}/undici';
const server = createServer((_q, r) => r.end('balanced'));
await new Promise((r) => server.listen(0, '127.0.0.1', r));
const gv = await Grapevine.start({ bind: '127.0.0.1:0' });
await gv.register({ name: 'web', port: server.address().port });
const dispatcher = createDispatcher(gv);
console.log(await (await fetch('http://web/', { dispatcher })).text());
await dispatcher.close(); await gv.close(); server.close();
`);
    const { stdout } = await run(process.execPath, ['lb.mjs'], { cwd: app });
    expect(stdout.trim()).toBe('balanced');
  }, 30_000);

  test('CommonJS: require() of the root, core and sim entry points', async () => {
    writeFileSync(join(app, 'cjs.cjs'), `const { Grapevine, InvalidOptionError } = require('${pkg.name}');
const core = require('${pkg.name}/core');
const { simulate } = require('${pkg.name}/sim');
(async () => {
  const gv = await Grapevine.start({ bind: '127.0.0.1:0' });
  let error = '';
  try { gv.lookup(undefined); } catch (e) { error = e instanceof InvalidOptionError ? e.option : 'wrong class'; }
  await gv.close();
  console.log(JSON.stringify({ error, keyBytes: core.KEY_BYTES, sim: typeof simulate }));
})();
`);
    const { stdout } = await run(process.execPath, ['cjs.cjs'], { cwd: app });
    expect(JSON.parse(stdout)).toEqual({ error: 'service', keyBytes: 32, sim: 'function' });
  }, 30_000);

  test('TypeScript strict: node16, nodenext CommonJS, bundler and node10 resolution all find the types', async () => {
    const source = `import { Grapevine, Membership, seededRng, type Instance } from '${pkg.name}';\nimport { simulate } from '${pkg.name}/sim';\n${USE}\nexport const i: Instance | undefined = undefined;\n`;
    writeFileSync(join(app, 'esm.mts'), source);
    writeFileSync(join(app, 'bundler.ts'), source);
    // node10 resolves no "exports": the types come from "types" and "typesVersions".
    writeFileSync(join(app, 'node10.ts'), `import { Grapevine, type Instance } from '${pkg.name}';\nimport { Membership } from '${pkg.name}/core';\nimport { simulate } from '${pkg.name}/sim';\nexport async function f(): Promise<Instance | undefined> { const gv = await Grapevine.start(); void Membership; void simulate; return gv.pick('web'); }\n`);
    writeFileSync(join(app, 'require.cts'), `import gv = require('${pkg.name}');\nimport sim = require('${pkg.name}/sim');\nexport const start: typeof gv.Grapevine.start = gv.Grapevine.start;\nexport const s: typeof sim.simulate = sim.simulate;\n`);
    const base = { strict: true, noEmit: true, skipLibCheck: false, types: ['node'], typeRoots: [join(ROOT, 'node_modules', '@types')], target: 'ES2022', lib: ['ES2022'] };
    const configs = {
      node16: { compilerOptions: { ...base, module: 'node16', moduleResolution: 'node16' }, files: ['esm.mts'] },
      nodenext: { compilerOptions: { ...base, module: 'nodenext', moduleResolution: 'nodenext' }, files: ['require.cts'] },
      bundler: { compilerOptions: { ...base, module: 'esnext', moduleResolution: 'bundler' }, files: ['bundler.ts'] },
      node10: { compilerOptions: { ...base, module: 'commonjs', moduleResolution: 'node10', ignoreDeprecations: '5.0' }, files: ['node10.ts'] },
    };
    const failures: string[] = [];
    for (const [name, config] of Object.entries(configs)) {
      writeFileSync(join(app, `tsconfig.${name}.json`), JSON.stringify(config));
      try {
        await run(process.execPath, [TSC, '-p', `tsconfig.${name}.json`], { cwd: app });
      } catch (e) {
        failures.push(`${name}: ${(e as { stdout?: string }).stdout ?? String(e)}`);
      }
    }
    expect(failures).toEqual([]);
  }, 120_000);

  test('the grapevine binary: --version, and `npx grapevine agent` serves /metrics (it brings prom-client) and stops on SIGTERM', async () => {
    const { stdout } = await run(join(app, 'node_modules', '.bin', 'grapevine'), ['--version'], { cwd: app });
    expect(stdout.trim()).toBe(pkg.version);
    const npx = spawn('npx', ['--no-install', 'grapevine', 'agent', '--bind', '127.0.0.1:0', '--http', '127.0.0.1:0', '--log-level', 'silent'], { cwd: app, stdio: ['ignore', 'pipe', 'inherit'] });
    let out = '';
    npx.stdout.on('data', (d: Buffer) => (out += d.toString()));
    for (let i = 0; i < 300 && !/\(pid \d+\)/.test(out); i++) await new Promise((r) => setTimeout(r, 50));
    const agentPid = Number(/\(pid (\d+)\)/.exec(out)?.[1]);
    expect(agentPid).toBeGreaterThan(0);
    // Installed as users install it, with nothing else: /metrics answers, the core's histograms in it.
    const api = /(http:\/\/127\.0\.0\.1:\d+)\/metrics/.exec(out)?.[1];
    const metrics = await fetch(`${api ?? 'http://127.0.0.1:1'}/metrics`);
    expect(metrics.status).toBe(200);
    expect(await metrics.text()).toMatch(/^grapevine_probe_rtt_seconds_count \d+$/m);
    const alive = (pid: number): boolean => {
      try {
        process.kill(pid, 0);
        return true;
      } catch {
        return false;
      }
    };
    npx.kill('SIGTERM');
    for (let i = 0; i < 100 && alive(agentPid); i++) await new Promise((r) => setTimeout(r, 100));
    const orphaned = alive(agentPid);
    if (orphaned) process.kill(agentPid, 'SIGKILL'); // ours: its PID came from its own output
    expect(orphaned).toBe(false);
  }, 60_000);

  test('package.json: the name is ours, the build is not stale', () => {
    expect(pkg.name).toBe('grapevine-registry');
    expect(readdirSync(join(app, 'node_modules', pkg.name, 'dist', 'src'))).toContain('index.js');
  });
});
