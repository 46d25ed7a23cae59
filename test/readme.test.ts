/**
 * Every TypeScript block in README.md and in docs/*.md, type-checked on its own under strict
 * mode as a user's ES module would be, with the package name mapped to this checkout's sources.
 * A block that stops compiling fails here with its file and line number, so the docs cannot
 * drift from the API.
 */
import { mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import ts from 'typescript';
import { afterAll, expect, test } from 'vitest';

const ROOT = join(import.meta.dirname, '..');
const work = join(ROOT, `.readme-check-${process.pid}`);

afterAll(() => rmSync(work, { recursive: true, force: true }));

/** The ```ts blocks of `markdown`, each with the line it starts on. */
function blocks(markdown: string): { line: number; code: string }[] {
  const out: { line: number; code: string }[] = [];
  const lines = markdown.split('\n');
  for (let i = 0; i < lines.length; i++) {
    if (lines[i]?.trim() !== '```ts') continue;
    const start = i + 1;
    let end = start;
    while (end < lines.length && lines[end]?.trim() !== '```') end++;
    out.push({ line: start + 1, code: lines.slice(start, end).join('\n') });
    i = end;
  }
  return out;
}

/** README.md and every page under docs/, as paths from the repository root. */
const PAGES = ['README.md', ...readdirSync(join(ROOT, 'docs')).filter((f) => f.endsWith('.md')).sort().map((f) => `docs/${f}`)];

test('every TypeScript block in the README and the docs compiles under strict mode', () => {
  const found = PAGES.flatMap((page) => blocks(readFileSync(join(ROOT, page), 'utf8')).map((b) => ({ ...b, page })));
  expect(found.filter((b) => b.page === 'README.md').length).toBeGreaterThanOrEqual(1);
  expect(found.length).toBeGreaterThanOrEqual(10);
  mkdirSync(work, { recursive: true });
  const files = found.map((b) => {
    const file = join(work, `${b.page.replace(/[/.]/g, '-')}-line-${b.line}.mts`);
    // `export {}` keeps each block a module of its own even if it imports nothing.
    writeFileSync(file, `${b.code}\nexport {};\n`);
    return file;
  });
  const program = ts.createProgram(files, {
    strict: true, noUncheckedIndexedAccess: true, noEmit: true, skipLibCheck: true,
    target: ts.ScriptTarget.ES2022, lib: ['lib.es2022.d.ts', 'lib.dom.d.ts'], types: ['node'],
    module: ts.ModuleKind.Node16, moduleResolution: ts.ModuleResolutionKind.Node16,
    baseUrl: ROOT,
    paths: {
      'grapevine-registry': ['src/index.ts'], 'grapevine-registry/core': ['src/core/index.ts'], 'grapevine-registry/sim': ['sim/index.ts'],
      'grapevine-registry/undici': ['src/client/undici.ts'], 'grapevine-registry/grpc': ['src/client/grpc.ts'],
    },
  });
  const problems = ts.getPreEmitDiagnostics(program)
    .filter((d) => d.file !== undefined && files.includes(d.file.fileName))
    .map((d) => {
      const { line } = (d.file as ts.SourceFile).getLineAndCharacterOfPosition(d.start ?? 0);
      const block = found[files.indexOf((d.file as ts.SourceFile).fileName)] as { line: number; page: string };
      return `${block.page}:${block.line + line}: ${ts.flattenDiagnosticMessageText(d.messageText, '\n')}`;
    });
  expect(problems).toEqual([]);
}, 120_000);
