/**
 * Health checks against real local servers on 127.0.0.1. Intervals are the 1 s minimum; every
 * wait is bounded and no assertion is about speed.
 */
import { createServer as createHttp, type Server } from 'node:http';
import { createServer as createTcp } from 'node:net';
import { afterEach, describe, expect, test } from 'vitest';
import { HealthCheck } from '../src/runtime/health-check.js';
import type { Health } from '../src/registry/record.js';
import { until } from './until.js';

const cleanups: (() => void)[] = [];
afterEach(() => {
  for (const c of cleanups.splice(0)) c();
});

async function httpServer(status: { code: number }): Promise<{ url: string; server: Server }> {
  const server = createHttp((_req, res) => {
    res.statusCode = status.code;
    res.end('ok');
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  cleanups.push(() => server.close());
  const port = (server.address() as { port: number }).port;
  return { url: `http://127.0.0.1:${port}/health`, server };
}

function track(): { seen: Health[]; onChange: (h: Health) => void } {
  const seen: Health[] = [];
  return { seen, onChange: (h) => seen.push(h) };
}

function started(check: HealthCheck): HealthCheck {
  cleanups.push(() => check.stop());
  return check;
}

describe('health checks', () => {
  test('HTTP: 2xx passing, 429 warning, 5xx critical, with rise/fall streaks', async () => {
    const status = { code: 200 };
    const { url } = await httpServer(status);
    const t = track();
    const check = started(new HealthCheck({ http: url, intervalMs: 1_000, timeoutMs: 900, rise: 2, fall: 2 }, t.onChange));
    expect(await check.start()).toBe('passing');
    status.code = 429;
    await until(() => check.status === 'warning');
    status.code = 503;
    await until(() => check.status === 'critical');
    status.code = 204;
    await until(() => check.status === 'passing');
    expect(t.seen).toEqual(['passing', 'warning', 'critical', 'passing']);
  });

  test('a single bad answer inside a streak does not flip the status', async () => {
    const status = { code: 200 };
    const t = track();
    let served = 0;
    const { url, server } = await httpServer(status);
    server.on('request', () => served++);
    const check = started(new HealthCheck({ http: url, intervalMs: 1_000, timeoutMs: 900, fall: 2 }, t.onChange));
    await check.start();
    status.code = 500;
    await until(() => served >= 2, 5_000); // one failing answer
    status.code = 200;
    await until(() => served >= 4, 5_000); // and passing ones after it
    expect(t.seen).toEqual(['passing']);
  });

  test('HTTP: nothing listening is critical', async () => {
    const { url, server } = await httpServer({ code: 200 });
    await new Promise((r) => server.close(r));
    const check = started(new HealthCheck({ http: url, intervalMs: 1_000 }, () => undefined));
    expect(await check.start()).toBe('critical');
  });

  test('TCP: connect is passing, refused is critical', async () => {
    const server = createTcp((s) => s.end());
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const port = (server.address() as { port: number }).port;
    const ok = started(new HealthCheck({ tcp: `127.0.0.1:${port}`, intervalMs: 1_000 }, () => undefined));
    expect(await ok.start()).toBe('passing');
    await new Promise((r) => server.close(r));
    const refused = started(new HealthCheck({ tcp: `127.0.0.1:${port}`, intervalMs: 1_000 }, () => undefined));
    expect(await refused.start()).toBe('critical');
  });

  test('TTL: critical until pass(), critical again when the heartbeat stops', async () => {
    const t = track();
    const check = started(new HealthCheck({ ttlMs: 1_000 }, t.onChange));
    expect(await check.start()).toBe('critical');
    check.pass();
    expect(check.status).toBe('passing');
    check.warn();
    expect(check.status).toBe('warning');
    check.pass();
    await until(() => check.status === 'critical');
    expect(t.seen).toEqual(['passing', 'warning', 'passing', 'critical']);
  });

  test('function: booleans and health values count; throwing or hanging is critical', async () => {
    const mk = (run: () => unknown) => started(new HealthCheck({ run: run as () => boolean, intervalMs: 1_000, timeoutMs: 50 }, () => undefined));
    expect(await mk(() => true).start()).toBe('passing');
    expect(await mk(() => false).start()).toBe('critical');
    expect(await mk(async () => 'warning').start()).toBe('warning');
    expect(await mk(() => { throw new Error('no'); }).start()).toBe('critical');
    expect(await mk(() => new Promise(() => undefined)).start()).toBe('critical');
    expect(await mk(() => 'nonsense').start()).toBe('critical');
  });

  test('bad definitions are typed errors naming the field', () => {
    const bad = (def: unknown, option: string) => expect(() => new HealthCheck(def as { ttlMs: number }, () => undefined))
      .toThrowError(expect.objectContaining({ code: 'grapevine.invalid-option', option }));
    bad({}, 'check');
    bad({ http: 'x', tcp: 'y' }, 'check');
    bad({ http: 'not a url' }, 'check.http');
    bad({ http: 'ftp://x/' }, 'check.http');
    bad({ tcp: '127.0.0.1:80', intervalMs: -1 }, 'check.intervalMs');
    bad({ tcp: '127.0.0.1:80', intervalMs: 5 }, 'check.intervalMs');
    bad({ ttlMs: 999 }, 'check.ttlMs');
    bad({ tcp: '127.0.0.1:80', rise: 0 }, 'check.rise');
    bad({ run: 'nope' }, 'check.run');
    expect(() => new HealthCheck({ tcp: '127.0.0.1:1' }, () => undefined).pass()).toThrowError(expect.objectContaining({ option: 'check' }));
  });
});
