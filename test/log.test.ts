/** The drop summary: many drops, one warning line per period, with counts by reason and a few sources. */
import { afterEach, expect, test, vi } from 'vitest';
import { DROP_SUMMARY_MS, DropSummary, type LogFields } from '../src/runtime/log.js';

afterEach(() => {
  vi.useRealTimers();
});

test('dropped input is summarized once per period, key errors called out', () => {
  vi.useFakeTimers();
  const warnings: { message: string; fields?: LogFields }[] = [];
  const log = { debug: () => undefined, info: () => undefined, error: () => undefined, warn: (message: string, fields?: LogFields) => void warnings.push({ message, ...(fields !== undefined ? { fields } : {}) }) };
  const summary = new DropSummary(log);
  for (let i = 0; i < 1_000; i++) summary.add(`127.0.0.${i % 7}:7946`, i % 2 === 0 ? 'wrong-key' : 'truncated');
  expect(warnings).toEqual([]);
  vi.advanceTimersByTime(DROP_SUMMARY_MS);
  expect(warnings).toHaveLength(1);
  expect(warnings[0]?.fields).toEqual({ dropped: { 'wrong-key': 500, truncated: 500 }, from: ['127.0.0.0:7946', '127.0.0.1:7946', '127.0.0.2:7946'] });
  expect(warnings[0]?.message).toMatch(/^dropped 1000 peer packet\(s\) in the last 10 s: wrong-key 500, truncated 500 .*do not share a key$/);
  vi.advanceTimersByTime(10 * DROP_SUMMARY_MS);
  expect(warnings).toHaveLength(1); // nothing new, nothing logged
  summary.add('127.0.0.9:1', 'too-long');
  summary.stop();
  vi.advanceTimersByTime(DROP_SUMMARY_MS);
  expect(warnings).toHaveLength(1);
});

test('logLevel: info by default (no suspicions or health scores), debug to see them, silent for nothing; a bad level names the option', async () => {
  const { Grapevine } = await import('../src/index.js');
  const levels = async (logLevel?: 'debug' | 'info' | 'warn' | 'silent'): Promise<Set<string>> => {
    const seen = new Set<string>();
    const logger = { debug: () => seen.add('debug'), info: () => seen.add('info'), warn: () => seen.add('warn'), error: () => seen.add('error') };
    // A seed that never answers: the start logs at info, and the failed join at error.
    const gv = Grapevine.start({ bind: '127.0.0.1:0', profile: 'local', logger, seeds: ['127.0.0.1:9'], joinTimeoutMs: 300, ...(logLevel !== undefined ? { logLevel } : {}) });
    await gv.then((g) => g.close(), () => undefined);
    return seen;
  };
  expect(await levels()).toEqual(new Set(['info', 'error']));
  expect(await levels('warn')).toEqual(new Set(['error']));
  expect(await levels('silent')).toEqual(new Set());
  expect((await levels('debug')).has('info')).toBe(true);
  await expect(Grapevine.start({ bind: '127.0.0.1:0', logLevel: 'loud' as 'info' })).rejects.toMatchObject({ option: 'logLevel' });
});
