/**
 * Health checks that run where the service runs: HTTP, TCP connect, TTL heartbeat and a user
 * function. Each produces passing, warning or critical; the first result counts at once, after
 * that a change needs `rise` consecutive better results or `fall` consecutive worse ones, so one
 * slow answer does not pull an instance out of every node's lookups (HAProxy's rise/fall).
 */
import { request as httpRequest, type IncomingMessage } from 'node:http';
import { request as httpsRequest } from 'node:https';
import { connect } from 'node:net';
import { parseAddress } from '../core/address.js';
import { InvalidOptionError } from '../core/errors.js';
import { CHECK_OUTPUT_BYTES_MAX, HEALTH, type Health, truncateUtf8 } from '../registry/record.js';
import { positive } from './options.js';

/** Shortest check interval and TTL, as Consul's and Kubernetes' (1 s): faster checks load the service more than they tell. */
export const CHECK_INTERVAL_MIN_MS = 1_000;

/** What every kind of check may carry: how it is named and shown (every member answers the same). */
interface Described {
  /** Unique among the node's checks; default `service:<id>` (`service:<id>:<n>` for the n-th of several). */
  id?: string;
  /** Default "Service '<name>' check". */
  name?: string;
  /** Free text for operators (Consul's Notes). */
  notes?: string;
  /** Status until the first result: default critical (Consul's Status). A first result replaces it. */
  status?: Health;
}

interface Timing extends Described {
  /** Time between runs, at least 1 s. Default 10 s. */
  intervalMs?: number;
  /** A run that takes longer is critical. Default 5 s or the interval, whichever is shorter. */
  timeoutMs?: number;
  /** Consecutive better results before the status improves. Default 2. */
  rise?: number;
  /** Consecutive worse results before the status degrades. Default 3. */
  fall?: number;
}

/** Requests `http` (GET unless `method`): 2xx is passing, 429 warning, anything else (or no answer) critical. */
export interface HttpCheck extends Timing {
  http: string;
  headers?: Record<string, string>;
  method?: string;
  body?: string;
  /** Accept any certificate from an https URL (Consul's TLSSkipVerify). */
  tlsSkipVerify?: boolean;
  /** Redirects to follow, at most 10 (default 0: a 3xx is critical). Consul's checks follow 10 unless DisableRedirects. */
  redirects?: number;
}
/** Connect to `tcp` ("host:port"): connected is passing. */
export interface TcpCheck extends Timing { tcp: string }
/** The service reports itself with pass()/warn()/fail(); silence for `ttlMs` (at least 1 s) is critical. */
export interface TtlCheck extends Described { ttlMs: number }
/** A status you set with pass()/warn()/fail(), which stays until you set another (Consul's checks registered in the catalog). */
export interface ManualCheck extends Described { status: Health }
/** Your own test: return a Health or a boolean; throwing or timing out is critical. */
export interface FunctionCheck extends Timing {
  run: (signal: AbortSignal) => Health | boolean | Promise<Health | boolean>;
}

export type CheckDefinition = HttpCheck | TcpCheck | TtlCheck | FunctionCheck | ManualCheck;

/** A run's result, and what it said (the check's output). */
interface Outcome { health: Health; output: string }
type CheckRun = (signal: AbortSignal) => Promise<Outcome>;

export class HealthCheck {
  private current: Health;
  private said = '';
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

  /** "http", "tcp", "ttl" or "function". */
  readonly type: string;

  /**
   * Validates `def` (InvalidOptionError naming `check.<field>`); `onChange` hears every status
   * change, `onOutput` every change of output alone.
   */
  constructor(def: CheckDefinition, private readonly onChange: (health: Health) => void, private readonly onOutput: () => void = () => undefined) {
    if (def === null || typeof def !== 'object') throw new InvalidOptionError('check', 'must be an object');
    const d = def as Partial<HttpCheck & TcpCheck & TtlCheck & FunctionCheck>;
    const kinds = ['http', 'tcp', 'ttlMs', 'run'].filter((k) => d[k as keyof typeof d] !== undefined);
    if (kinds.length > 1 || (kinds.length === 0 && d.status === undefined)) throw new InvalidOptionError('check', 'needs exactly one of http, tcp, ttlMs, run, or only a status');
    this.type = { http: 'http', tcp: 'tcp', ttlMs: 'ttl', run: 'function' }[kinds[0] ?? ''] ?? '';
    for (const f of ['id', 'name', 'notes'] as const) if (d[f] !== undefined && typeof d[f] !== 'string') throw new InvalidOptionError(`check.${f}`, 'must be a string');
    if (d.status !== undefined && !HEALTH.includes(d.status)) throw new InvalidOptionError('check.status', 'must be passing, warning or critical');
    this.current = d.status ?? 'critical';
    this.intervalMs = atLeastOneSecond(d.intervalMs, 'check.intervalMs', 10_000);
    this.timeoutMs = positive(d.timeoutMs, 'check.timeoutMs', Math.min(this.intervalMs, 5_000));
    this.rise = count(d.rise, 'check.rise', 2);
    this.fall = count(d.fall, 'check.fall', 3);
    this.ttlMs = d.ttlMs === undefined ? 0 : atLeastOneSecond(d.ttlMs, 'check.ttlMs', 0);
    if (d.http !== undefined) this.run = httpRun(d as HttpCheck);
    else if (d.tcp !== undefined) this.run = tcpRun(d.tcp);
    else if (d.run !== undefined) this.run = functionRun(d.run);
  }

  /** A TTL check: the service reports in with pass()/warn()/fail(). */
  get isTtl(): boolean {
    return this.ttlMs > 0;
  }

  /** Time between runs and a run's deadline (0 for a TTL check, which does not run). */
  get timing(): { intervalMs: number; timeoutMs: number } {
    return this.run === undefined ? { intervalMs: 0, timeoutMs: 0 } : { intervalMs: this.intervalMs, timeoutMs: this.timeoutMs };
  }

  get status(): Health {
    return this.current;
  }

  /** What the last run said: Consul's check output, at most CHECK_OUTPUT_BYTES_MAX bytes. */
  get output(): string {
    return this.said;
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

  /** TTL heartbeat: the service is fine (until ttlMs from now); `note` becomes the output. */
  pass(note = ''): void {
    this.report('passing', note);
  }

  warn(note = ''): void {
    this.report('warning', note);
  }

  fail(note = ''): void {
    this.report('critical', note);
  }

  private report(health: Health, note: string): void {
    if (this.run !== undefined) throw new InvalidOptionError('check', 'pass()/warn()/fail() are for TTL and manual checks');
    if (typeof note !== 'string') throw new InvalidOptionError('note', 'must be a string');
    if (this.stopped) return;
    this.say(note);
    this.set(health);
    this.armTtl();
  }

  private armTtl(): void {
    clearTimeout(this.timer);
    if (this.stopped || this.ttlMs === 0) return;
    this.timer = setTimeout(() => {
      this.say('TTL expired');
      this.set('critical');
    }, this.ttlMs);
    this.timer.unref();
  }

  /** Sets the output (bounded); output alone changing is reported apart from status. */
  private say(output: string): void {
    const bounded = truncateUtf8(output, CHECK_OUTPUT_BYTES_MAX);
    if (bounded === this.said) return;
    this.said = bounded;
    this.onOutput();
  }

  private async runOnce(): Promise<void> {
    if (this.stopped || this.run === undefined) return;
    const ac = new AbortController();
    this.inFlight = ac;
    const timeout = setTimeout(() => ac.abort(new Error('health check timed out')), this.timeoutMs);
    let result: Outcome;
    try {
      result = await this.run(ac.signal);
      if (ac.signal.aborted) result = { health: 'critical', output: `timed out after ${this.timeoutMs} ms` };
    } catch (e) {
      result = { health: 'critical', output: ac.signal.aborted ? `timed out after ${this.timeoutMs} ms` : String((e as Error)?.message ?? e) };
    } finally {
      clearTimeout(timeout);
    }
    if (this.stopped) return;
    this.say(result.output);
    this.observe(result.health);
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

function httpRun(def: HttpCheck): CheckRun {
  const parsed = httpUrl(def.http, 'check.http');
  const method = def.method ?? 'GET';
  if (typeof method !== 'string' || !/^[A-Z]+$/.test(method)) throw new InvalidOptionError('check.method', `must be an HTTP method such as GET, got ${JSON.stringify(method)}`);
  if (def.body !== undefined && typeof def.body !== 'string') throw new InvalidOptionError('check.body', 'must be a string');
  const redirects = def.redirects ?? 0;
  if (!Number.isInteger(redirects) || redirects < 0 || redirects > 10) throw new InvalidOptionError('check.redirects', 'must be an integer in 0..10');
  // Consul's output: "HTTP GET http://...: 200 OK Output: <the start of the body>".
  const said = `HTTP ${method} ${def.http}`;
  const once = (url: URL, verb: string, body: string | undefined, signal: AbortSignal): Promise<IncomingMessage> => new Promise((resolve, reject) => {
    const request = url.protocol === 'https:' ? httpsRequest : httpRequest;
    const tls = url.protocol === 'https:' && def.tlsSkipVerify === true ? { rejectUnauthorized: false } : {};
    const req = request(url, { method: verb, signal, headers: { 'User-Agent': 'grapevine health check', ...def.headers }, ...tls }, resolve);
    req.once('error', (e) => reject(new Error(`${said}: ${e.message}`)));
    req.end(body);
  });
  return async (signal) => {
    let [url, verb, body] = [parsed, method, def.body];
    let res = await once(url, verb, body, signal);
    // Redirects followed as Go's http.Client follows them (Consul's checks): 301-303 turn into GET.
    for (let hop = 0; hop < redirects && [301, 302, 303, 307, 308].includes(res.statusCode ?? 0) && res.headers.location !== undefined; hop++) {
      res.destroy();
      url = httpUrl(new URL(res.headers.location, url).href, 'redirect');
      if ((res.statusCode ?? 0) <= 303 && verb !== 'HEAD') [verb, body] = ['GET', undefined];
      res = await once(url, verb, body, signal);
    }
    return outcome(res, said);
  };
}

function httpUrl(text: string, option: string): URL {
  let url: URL;
  try {
    url = new URL(text);
  } catch {
    throw new InvalidOptionError(option, `${text} is not a URL`);
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') throw new InvalidOptionError(option, `${text} is not an http(s) URL`);
  return url;
}

/** A response's health (2xx passing, 429 warning, else critical) and Consul's output: the status line and the body's first bytes. */
function outcome(res: IncomingMessage, said: string): Promise<Outcome> {
  return new Promise((resolve) => {
    const chunks: Buffer[] = [];
    let size = 0;
    const done = (): void => {
      res.destroy();
      const code = res.statusCode ?? 0;
      const health: Health = code >= 200 && code < 300 ? 'passing' : code === 429 ? 'warning' : 'critical';
      resolve({ health, output: `${said}: ${code} ${res.statusMessage ?? ''} Output: ${Buffer.concat(chunks).toString('utf8')}` });
    };
    res.on('data', (c: Buffer) => {
      chunks.push(c);
      size += c.length;
      if (size >= CHECK_OUTPUT_BYTES_MAX) done();
    });
    res.once('end', done);
    res.once('error', done);
  });
}

function tcpRun(target: string): CheckRun {
  const { host, port } = parseAddress(target, 'check.tcp');
  if (port === 0) throw new InvalidOptionError('check.tcp', 'needs a port');
  return (signal) => new Promise<Outcome>((resolve) => {
    const socket = connect({ host, port });
    const done = (health: Health, output: string): void => {
      signal.removeEventListener('abort', onAbort);
      socket.destroy();
      resolve({ health, output: `TCP connect ${target}: ${output}` });
    };
    const onAbort = (): void => done('critical', 'timed out');
    signal.addEventListener('abort', onAbort, { once: true });
    socket.once('connect', () => done('passing', 'Success'));
    socket.once('error', (e) => done('critical', e.message));
  });
}

function functionRun(run: FunctionCheck['run']): CheckRun {
  if (typeof run !== 'function') throw new InvalidOptionError('check.run', 'must be a function');
  return async (signal) => {
    const aborted = new Promise<Health>((resolve) => signal.addEventListener('abort', () => resolve('critical'), { once: true }));
    const result = await Promise.race([Promise.resolve().then(() => run(signal)), aborted]);
    if (typeof result === 'boolean') return { health: result ? 'passing' : 'critical', output: '' };
    return HEALTH.includes(result) ? { health: result, output: '' } : { health: 'critical', output: `returned ${String(result)}` };
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

