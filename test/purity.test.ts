/**
 * src/core and src/registry must stay pure (docs/ARCHITECTURE.md): no I/O, no clock, no global
 * randomness, no timers. This scans the source so a violation fails CI instead of relying on
 * review; which layer may import which is layering.test.ts's job.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, test } from 'vitest';

const CORE = join(import.meta.dirname, '..', 'src', 'core');
const REGISTRY = join(import.meta.dirname, '..', 'src', 'registry');
const ALLOWED_PACKAGES = new Set(['msgpackr/pack', 'msgpackr/unpack', '@noble/ciphers/salsa.js', '@noble/hashes/sha2.js']);
const FORBIDDEN: [RegExp, string][] = [
  [/\bDate\b/, 'Date (clock)'],
  [/\bperformance\b/, 'performance (clock)'],
  [/\bprocess\b/, 'process'],
  [/\bMath\.random\b/, 'Math.random'],
  [/\bcrypto\b/, 'crypto'],
  [/\b(setTimeout|setInterval|setImmediate|queueMicrotask)\b/, 'timers'],
  [/\brequire\s*\(/, 'require'],
  [/\bimport\s*\(/, 'dynamic import'],
  [/\bglobalThis\b/, 'globalThis'],
  [/\bBuffer\b/, 'Buffer (Node-only)'],
];

function sources(dir = CORE): string[] {
  return readdirSync(dir).filter((f) => f.endsWith('.ts')).map((f) => join(dir, f));
}

/** Source with comments and string literals blanked, so prose that mentions a name is fine. */
function code(text: string): string {
  return text
    .replace(/\/\*[\s\S]*?\*\//g, '')
    .replace(/\/\/.*$/gm, '')
    .replace(/'(?:\\.|[^'\\\n])*'|"(?:\\.|[^"\\\n])*"|`(?:\\.|[^`\\])*`/g, "''");
}

describe('src/core and src/registry purity', () => {
  test('the scan sees the core files', () => {
    expect(sources().length).toBeGreaterThanOrEqual(10);
  });

  test.each(sources())('%s imports only core files, msgpackr and tweetnacl', (file) => {
    const text = readFileSync(file, 'utf8');
    const specifiers = [...text.matchAll(/\bfrom\s+['"]([^'"]+)['"]/g)].map((m) => m[1] as string);
    for (const spec of specifiers) {
      const ok = (spec.startsWith('./') && !spec.includes('..')) || ALLOWED_PACKAGES.has(spec);
      expect(ok, `${file} imports ${spec}`).toBe(true);
    }
  });

  test.each([...sources(), ...sources(REGISTRY)])('%s reads no clock, draws no global randomness, arms no timer', (file) => {
    const text = code(readFileSync(file, 'utf8'));
    for (const [pattern, what] of FORBIDDEN) expect(pattern.test(text), `${file} uses ${what}`).toBe(false);
  });

  test('the checker catches a violation', () => {
    const bad = code("import { x } from 'node:dgram';\nconst t = Date.now(); // Date in a comment is fine");
    expect(FORBIDDEN.some(([p]) => p.test(bad))).toBe(true);
    expect(FORBIDDEN.some(([p]) => p.test(code('// Date.now() only in a comment')))).toBe(false);
  });
});
