/**
 * Arrows point down only (docs/ARCHITECTURE.md): this test holds the table of which layer may
 * import which, reading every import in src/ and sim/, and fails naming the offending one.
 * Purity of the core (no clock, no timers, no randomness) is purity.test.ts's job.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { describe, expect, test } from 'vitest';

const ROOT = resolve(import.meta.dirname, '..');
const INTERFACES = ['src/http', 'src/dns', 'src/bridge', 'src/client', 'src/persist', 'src/queries', 'src/kv', 'src/events'];

interface Rule {
  /** Our folders or files this layer may import (its own folder always). */
  ours: string[];
  /** Packages it may import: a list, or any package and node: built-in. */
  packages: string[] | 'any';
}

/** The allowed-imports table. A layer is the longest key that prefixes a file's path. */
const RULES: Record<string, Rule> = {
  'src/core': { ours: [], packages: ['msgpackr', '@noble/ciphers', '@noble/hashes'] },
  'src/registry': { ours: ['src/core'], packages: ['msgpackr', '@noble/hashes'] },
  'src/runtime': { ours: ['src/core', 'src/registry'], packages: 'any' },
  sim: { ours: ['src/core', 'src/registry'], packages: 'any' },
  ...Object.fromEntries(INTERFACES.map((dir) => [dir, { ours: ['src/runtime/index.ts', 'src/registry'], packages: 'any' }])),
  'src/cli': { ours: ['src/runtime/index.ts', 'src/registry', 'src/core', ...INTERFACES], packages: 'any' },
  'src/index.ts': { ours: ['src'], packages: [] },
};

function layerOf(path: string): string | undefined {
  let best: string | undefined;
  for (const key of Object.keys(RULES)) {
    if ((path === key || path.startsWith(`${key}/`)) && (best === undefined || key.length > best.length)) best = key;
  }
  return best;
}

const within = (path: string, area: string): boolean => path === area || path.startsWith(`${area}/`);

/** Why `file` (repository-relative) may not import `spec`, or undefined if it may. */
function violation(file: string, spec: string): string | undefined {
  const layer = layerOf(file);
  if (layer === undefined) return undefined;
  const rule = RULES[layer] as Rule;
  if (!spec.startsWith('.')) {
    // A package is named by its root ("msgpackr" allows "msgpackr/pack"; scoped names keep their scope).
    const pkg = spec.split('/').slice(0, spec.startsWith('@') ? 2 : 1).join('/');
    if (rule.packages === 'any' || rule.packages.includes(pkg)) return undefined;
    return `${file} imports package ${spec}: ${layer} may import only ${rule.packages.join(', ') || 'no packages'}`;
  }
  const target = relative(ROOT, resolve(ROOT, dirname(file), spec)).replace(/\.js$/, '.ts');
  if (within(target, layer === 'src/index.ts' ? 'src' : layer)) return undefined;
  if (rule.ours.some((area) => within(target, area))) return undefined;
  return `${file} imports ${spec} (${target}): ${layer} may import only ${[layer, ...rule.ours].join(', ')}`;
}

function sources(dir: string): string[] {
  return readdirSync(join(ROOT, dir), { withFileTypes: true, recursive: true })
    .filter((e) => e.isFile() && e.name.endsWith('.ts'))
    .map((e) => relative(ROOT, join(e.parentPath, e.name)));
}

function imports(file: string): string[] {
  const text = readFileSync(join(ROOT, file), 'utf8');
  const statics = [...text.matchAll(/^(?:import|export)\b[^;]*?\bfrom\s*['"]([^'"]+)['"]/gm)];
  const sideEffects = [...text.matchAll(/^import\s*['"]([^'"]+)['"]/gm)];
  const dynamics = [...text.matchAll(/\bimport\s*\(\s*['"]([^'"]+)['"]\s*\)/g)];
  return [...statics, ...sideEffects, ...dynamics].map((m) => m[1] as string);
}

describe('layering: arrows point down only', () => {
  const files = [...sources('src'), ...sources('sim')];

  test('every file in src/ and sim/ belongs to a layer of the table', () => {
    expect(files.length).toBeGreaterThan(40);
    expect(files.filter((f) => layerOf(f) === undefined)).toEqual([]);
  });

  test.each(files)('%s', (file) => {
    const bad = imports(file).map((spec) => violation(file, spec)).filter((v) => v !== undefined);
    expect(bad).toEqual([]);
  });

  test('the checker names what it refuses', () => {
    expect(violation('src/core/probe.ts', '../registry/catalog.js')).toMatch(/src\/core\/probe.ts imports .*src\/registry\/catalog.ts/);
    expect(violation('src/core/probe.ts', 'node:dgram')).toMatch(/package node:dgram/);
    expect(violation('src/registry/catalog.ts', '../runtime/driver.js')).toBeDefined();
    expect(violation('sim/engine.ts', '../src/runtime/index.js')).toBeDefined();
    expect(violation('src/http/server.ts', '../runtime/grapevine.js')).toMatch(/may import only src\/http, src\/runtime\/index.ts, src\/registry/);
    expect(violation('src/http/server.ts', '../runtime/index.js')).toBeUndefined();
    expect(violation('src/runtime/grapevine.ts', '../http/server.js')).toBeDefined();
    expect(violation('src/dns/server.ts', '../http/server.js')).toBeDefined();
    expect(violation('src/cli/main.ts', '../http/server.js')).toBeUndefined();
    expect(violation('src/registry/catalog.ts', '../core/members.js')).toBeUndefined();
  });
});
