/**
 * Health checks that run where the service runs: HTTP, TCP connect, TTL heartbeat and a user
 * function. Each produces passing, warning or critical; the first result counts at once, after
 * that a change needs `rise` consecutive better results or `fall` consecutive worse ones, so one
 * slow answer does not pull an instance out of every node's lookups (HAProxy's rise/fall).
 */
import { connect } from 'node:net';
import { parseAddress } from '../core/address.js';
import { InvalidOptionError } from '../core/errors.js';
import { HEALTH, type Health } from '../registry/record.js';
import { positive } from './options.js';

/** Shortest check interval and TTL, as Consul's and Kubernetes' (1 s): faster checks load the service more than they tell. */
export const CHECK_INTERVAL_MIN_MS = 1_000;

interface Timing {
  /** Time between runs, at least 1 s. Default 10 s. */
  intervalMs?: number;
  /** A run that takes longer is critical. Default 5 s or the interval, whichever is shorter. */
  timeoutMs?: number;
  /** Consecutive better results before the status improves. Default 2. */
  rise?: number;
  /** Consecutive worse results before the status degrades. Default 3. */
  fall?: number;
}

/** GET `http`: 2xx is passing, 429 warning, anything else (or no answer) critical. */
export interface HttpCheck extends Timing { http: string; headers?: Record<string, string> }
/** Connect to `tcp` ("host:port"): connected is passing. */
export interface TcpCheck extends Timing { tcp: string }
/** The service reports itself with pass()/warn()/fail(); silence for `ttlMs` (at least 1 s) is critical. */
export interface TtlCheck { ttlMs: number }
/** Your own test: return a Health or a boolean; throwing or timing out is critical. */
export interface FunctionCheck extends Timing {
  run: (signal: AbortSignal) => Health | boolean | Promise<Health | boolean>;
}

export type CheckDefinition = HttpCheck | TcpCheck | TtlCheck | FunctionCheck;

type CheckRun = (signal: AbortSignal) => Promise<Health>;

export class HealthCheck {
  private current: Health = 'critical';
  private seen = false;
  private streak = 0;
  private streakOf: Health = 'critical';
  private timer: NodeJS.Timeout | undefined;
  private inFlight: AbortController | undefined;
  private stopped = false;
  private readonly run: CheckRun | undefined;
  private readonly intervalMs: number;
  private readonly timeoutMs: number;
  private readonly rise: number;
  private readonly fall: number;
  private readonly ttlMs: number;

  /** Validates `def` (InvalidOptionError naming `check.<field>`); `onChange` hears every status change. */
  constructor(def: CheckDefinition, private readonly onChange: (health: Health) => void) {
    if (def === null || typeof def !== 'object') throw new InvalidOptionError('check', 'must be an object');
    const d = def as Partial<HttpCheck & TcpCheck & TtlCheck & FunctionCheck>;
    const kinds = ['http', 'tcp', 'ttlMs', 'run'].filter((k) => d[k as keyof typeof d] !== undefined);
    if (kinds.length !== 1) throw new InvalidOptionError('check', 'needs exactly one of http, tcp, ttlMs, run');
    this.intervalMs = atLeastOneSecond(d.intervalMs, 'check.intervalMs', 10_000);
    this.timeoutMs = positive(d.timeoutMs, 'check.timeoutMs', Math.min(this.intervalMs, 5_000));
    this.rise = count(d.rise, 'check.rise', 2);
    this.fall = count(d.fall, 'check.fall', 3);
    this.ttlMs = d.ttlMs === undefined ? 0 : atLeastOneSecond(d.ttlMs, 'check.ttlMs', 0);
    if (d.http !== undefined) this.run = httpRun(d.http, d.headers);
    else if (d.tcp !== undefined) this.run = tcpRun(d.tcp);
    else if (d.run !== undefined) this.run = functionRun(d.run);
  }

  /** A TTL check: the service reports in with pass()/warn()/fail(). */
  get isTtl(): boolean {
    return this.run === undefined;
  }

  get status(): Health {
    return this.current;
  }

  /** Runs the first check now; resolves with its result (a TTL check starts critical until pass()). */
  async start(): Promise<Health> {
    if (this.run === undefined) {
      this.armTtl();
      return this.current;
    }
    await this.runOnce();
    return this.current;
  }

  stop(): void {
    this.stopped = true;
    clearTimeout(this.timer);
    this.inFlight?.abort();
  }

  /** TTL heartbeat: the service is fine (until ttlMs from now). */
  pass(): void {
    this.report('passing');
  }

  warn(): void {
    this.report('warning');
  }

  fail(): void {
    this.report('critical');
  }

  private report(health: Health): void {
    if (this.run !== undefined) throw new InvalidOptionError('check', 'pass()/warn()/fail() are for TTL checks');
    if (this.stopped) return;
    this.set(health);
    this.armTtl();
  }

  private armTtl(): void {
    clearTimeout(this.timer);
    if (this.stopped) return;
    this.timer = setTimeout(() => this.set('critical'), this.ttlMs);
    this.timer.unref();
  }

  private async runOnce(): Promise<void> {
    if (this.stopped || this.run === undefined) return;
    const ac = new AbortController();
    this.inFlight = ac;
    const timeout = setTimeout(() => ac.abort(new Error('health check timed out')), this.timeoutMs);
    let result: Health;
    try {
      result = await this.run(ac.signal);
      if (ac.signal.aborted) result = 'critical';
    } catch {
      result = 'critical';
    } finally {
      clearTimeout(timeout);
    }
    if (this.stopped) return;
    this.observe(result);
    this.timer = setTimeout(() => void this.runOnce(), this.intervalMs);
    this.timer.unref();
  }

  /** Applies rise/fall: the first result counts at once, later changes need a streak. */
  private observe(result: Health): void {
    if (!this.seen) {
      this.seen = true;
      this.set(result);
      return;
    }
    if (result === this.current) {
      this.streak = 0;
      return;
    }
    this.streak = result === this.streakOf ? this.streak + 1 : 1;
    this.streakOf = result;
    const needed = HEALTH.indexOf(result) < HEALTH.indexOf(this.current) ? this.rise : this.fall;
    if (this.streak >= needed) this.set(result);
  }

  private set(health: Health): void {
    this.seen = true;
    this.streak = 0;
    if (health === this.current) return;
    this.current = health;
    this.onChange(health);
  }
}

function httpRun(url: string, headers: Record<string, string> | undefined): CheckRun {
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    throw new InvalidOptionError('check.http', `${url} is not a URL`);
  }
  if (parsed.protocol !== 'http:' && parsed.protocol !== 'https:') throw new InvalidOptionError('check.http', 'must be an http(s) URL');
  return async (signal) => {
    const res = await fetch(parsed, { signal, redirect: 'manual', ...(headers !== undefined ? { headers } : {}) });
    await res.body?.cancel();
    if (res.status >= 200 && res.status < 300) return 'passing';
    return res.status === 429 ? 'warning' : 'critical';
  };
}

function tcpRun(target: string): CheckRun {
  const { host, port } = parseAddress(target, 'check.tcp');
  if (port === 0) throw new InvalidOptionError('check.tcp', 'needs a port');
  return (signal) => new Promise<Health>((resolve) => {
    const socket = connect({ host, port });
    const done = (h: Health): void => {
      signal.removeEventListener('abort', onAbort);
      socket.destroy();
      resolve(h);
    };
    const onAbort = (): void => done('critical');
    signal.addEventListener('abort', onAbort, { once: true });
    socket.once('connect', () => done('passing'));
    socket.once('error', () => done('critical'));
  });
}

function functionRun(run: FunctionCheck['run']): CheckRun {
  if (typeof run !== 'function') throw new InvalidOptionError('check.run', 'must be a function');
  return async (signal) => {
    const aborted = new Promise<Health>((resolve) => signal.addEventListener('abort', () => resolve('critical'), { once: true }));
    const result = await Promise.race([Promise.resolve().then(() => run(signal)), aborted]);
    if (typeof result === 'boolean') return result ? 'passing' : 'critical';
    return HEALTH.includes(result) ? result : 'critical';
  };
}

function atLeastOneSecond(value: number | undefined, option: string, fallback: number): number {
  const ms = positive(value, option, fallback);
  if (ms < CHECK_INTERVAL_MIN_MS) throw new InvalidOptionError(option, `must be at least ${CHECK_INTERVAL_MIN_MS} ms, got ${ms}`);
  return ms;
}

function count(value: number | undefined, option: string, fallback: number): number {
  if (value === undefined) return fallback;
  if (!Number.isInteger(value) || value < 1 || value > 100) throw new InvalidOptionError(option, 'must be an integer in 1..100');
  return value;
}
