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
