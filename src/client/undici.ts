/**
 * Client-side load balancing for fetch and undici: `fetch('http://billing/charge', { dispatcher })`
 * sends the request to one of billing's healthy instances, chosen from this member's catalog
 * (no proxy, no DNS lookup). Subpath `grapevine-registry/undici`; needs the optional peer
 * dependency undici 7.x.
 *
 * Host names: a single label (`billing`), `<tag>.<service>` when `<service>` is known
 * (`v2.billing`), and `[<tag>.]<service>.service.<domain>` are services; an unknown service fails
 * with NoInstanceError, without any DNS lookup. Other hosts, `localhost` and IP literals pass
 * through to a plain undici Agent.
 *
 * Per instance one connection pool, closed when the instance leaves the catalog. Choice:
 * least-request by default (power of two choices over requests in flight), or round-robin,
 * random, weighted; instances whose node metadata matches `zone` are preferred while any is
 * usable. Passive outlier detection: consecutive 5xx answers or connection errors eject an
 * instance for a growing time, never more than `maxEjectedShare` of them. A request that got no
 * response is retried on another instance when it is idempotent or never reached one (connection
 * refused); retries of requests that reached an instance spend a budget; an aborted request
 * is not retried.
 */
import { Agent, Dispatcher, Pool } from 'undici';
import type { Instance } from '../registry/index.js';
import { type Grapevine, GrapevineError, InvalidOptionError, ipFamily } from '../runtime/index.js';

export type Strategy = 'least-request' | 'round-robin' | 'random' | 'weighted';

export interface DispatcherOptions {
  /** How an instance is chosen. Default least-request. */
  strategy?: Strategy;
  /** Prefer instances whose node metadata `zoneKey` equals this (the caller's zone). */
  zone?: string;
  /** Node metadata key that holds an instance's zone. Default "zone". */
  zoneKey?: string;
  /** The DNS-style domain of `<service>.service.<domain>` hosts. Default "grapevine". */
  domain?: string;
  /** Other instances to try after a failed attempt. Default 2. */
  retries?: number;
  /** Retries of requests that reached an instance, per request made (10 to start). Default 0.2. */
  retryBudget?: number;
  /** Consecutive 5xx or connection errors that eject an instance. Default 5. */
  consecutiveErrors?: number;
  /** First ejection length; it doubles with each ejection of the same instance, up to 5 min. Default 10 s. */
  ejectionMs?: number;
  /** Largest share of a service's instances ejected at once. Default 0.5. */
  maxEjectedShare?: number;
  /** Options for each instance's undici Pool. */
  pool?: Pool.Options;
}

/** No healthy instance of the service is left (or the service is unknown). */
export class NoInstanceError extends GrapevineError {
  constructor(readonly service: string) {
    super('grapevine.no-instance', `no healthy instance of ${JSON.stringify(service)}`);
  }
}

const EJECTION_MAX_MS = 5 * 60_000;
const RETRY_TOKENS_START = 10;
const RETRY_TOKENS_MAX = 100;
const IDEMPOTENT = new Set(['GET', 'HEAD', 'OPTIONS', 'PUT', 'DELETE', 'TRACE']);
/** Errors that mean the request never reached the instance. */
const NOT_SENT = new Set(['ECONNREFUSED', 'UND_ERR_CONNECT_TIMEOUT', 'EHOSTUNREACH', 'ENETUNREACH', 'EADDRNOTAVAIL']);

interface Health {
  inFlight: number;
  failures: number;
  ejections: number;
  ejectedUntil: number;
}

const keyOf = (i: Instance): string => `${i.node}\u0000${i.id}`;
const HEALTHY = Object.freeze({ healthy: true });

class GrapevineDispatcher extends Dispatcher {
  private readonly pools = new Map<string, Pool>();
  private readonly health = new Map<string, Health>();
  private passthrough: Agent | undefined;
  private cursor = 0;
  /** Until when some instance is ejected (0: none): lets the common case skip the ejection filter. */
  private ejectedUntilMax = 0;
  /** Parsed origins and their targets, and the catalog's services by lower-cased name (kept per catalog index). */
  private readonly origins = new Map<string, { protocol: string; target: { service: string; tag: string | undefined } | undefined }>();
  private services = new Map<string, string>();
  private servicesAt = -1;
  private retryTokens = RETRY_TOKENS_START;
  private closed = false;
  private readonly unsubscribe: () => void;
  private readonly o: Required<Omit<DispatcherOptions, 'zone' | 'pool'>> & Pick<DispatcherOptions, 'zone' | 'pool'>;

  constructor(private readonly gv: Grapevine, options: DispatcherOptions) {
    super();
    const strategy = options.strategy ?? 'least-request';
    if (!['least-request', 'round-robin', 'random', 'weighted'].includes(strategy)) throw new InvalidOptionError('strategy', `unknown: ${String(strategy)}`);
    const share = options.maxEjectedShare ?? 0.5;
    if (typeof share !== 'number' || share < 0 || share > 1) throw new InvalidOptionError('maxEjectedShare', 'must be between 0 and 1');
    this.o = {
      strategy, zoneKey: options.zoneKey ?? 'zone', domain: (options.domain ?? 'grapevine').toLowerCase(), retries: options.retries ?? 2,
      retryBudget: options.retryBudget ?? 0.2, consecutiveErrors: options.consecutiveErrors ?? 5, ejectionMs: options.ejectionMs ?? 10_000,
      maxEjectedShare: share, ...(options.zone !== undefined ? { zone: options.zone } : {}), ...(options.pool !== undefined ? { pool: options.pool } : {}),
    };
    // An instance gone from the catalog gets no new connection: its pool closes.
    const onService = ({ type, instance }: { type: string; instance: Instance }): void => {
      if (type !== 'removed') return;
      const key = keyOf(instance);
      void this.pools.get(key)?.close();
      this.pools.delete(key);
      this.health.delete(key);
    };
    gv.on('service', onService);
    this.unsubscribe = () => gv.off('service', onService);
  }

  /** The service and tag a host names, or undefined for a host to pass through. */
  private target(host: string): { service: string; tag: string | undefined } | undefined {
    const h = host.toLowerCase().replace(/\.$/, '');
    if (h === 'localhost' || ipFamily(h.replace(/^\[|\]$/g, '')) !== 0) return undefined;
    const suffix = `.service.${this.o.domain}`;
    if (h.endsWith(suffix)) {
      const labels = h.slice(0, -suffix.length).split('.');
      if (labels.length === 1) return { service: labels[0] as string, tag: undefined };
      if (labels.length === 2) return { service: labels[1] as string, tag: labels[0] };
      return undefined;
    }
    const labels = h.split('.');
    if (labels.length === 1) return { service: h, tag: undefined };
    if (labels.length === 2 && this.known(labels[1] as string)) return { service: labels[1] as string, tag: labels[0] };
    return undefined;
  }

  private known(service: string): boolean {
    return this.serviceName(service) !== undefined;
  }

  /** The catalog's spelling of a lower-cased service name, if it has the service. */
  private serviceName(lower: string): string | undefined {
    const at = this.gv.catalog.index;
    if (at !== this.servicesAt) {
      this.services = new Map(this.gv.services().map((s) => [s.toLowerCase(), s]));
      this.servicesAt = at;
    }
    return this.services.get(lower);
  }

  /** An origin's protocol and target, parsed once per origin (the cache is dropped when it grows large). */
  private route(origin: string): { protocol: string; target: { service: string; tag: string | undefined } | undefined } {
    let r = this.origins.get(origin);
    if (r === undefined) {
      const url = new URL(origin);
      r = { protocol: url.protocol, target: this.target(url.hostname) };
      // Whether a two-label host names a service depends on the catalog: do not keep those.
      if (r.target === undefined || url.hostname.split('.').length !== 2) {
        if (this.origins.size >= 1_024) this.origins.clear();
        this.origins.set(origin, r);
      }
    }
    return r;
  }

  override dispatch(options: Dispatcher.DispatchOptions, handler: Dispatcher.DispatchHandler): boolean {
    if (this.closed) throw new Error('dispatcher closed');
    const route = options.origin === undefined ? undefined : this.route(String(options.origin));
    if (route?.target === undefined) {
      this.passthrough ??= new Agent(this.o.pool);
      return this.passthrough.dispatch(options, handler);
    }
    this.retryTokens = Math.min(RETRY_TOKENS_MAX, this.retryTokens + this.o.retryBudget);
    const { service, tag } = route.target;
    new Call(this, this.serviceName(service) ?? service, tag, route.protocol, options, handler).next();
    return true;
  }

  // ---------------------------------------------------------------- used by Call

  /** An instance for the next attempt, or undefined when none is usable. */
  choose(service: string, tag: string | undefined, tried: ReadonlySet<string>): Instance | undefined {
    const now = Date.now();
    const all = this.gv.lookup(service, tag === undefined ? HEALTHY : { healthy: true, tags: [tag] });
    let usable = tried.size === 0 && now >= this.ejectedUntilMax ? all
      : all.filter((i) => !tried.has(keyOf(i)) && (this.health.get(keyOf(i))?.ejectedUntil ?? 0) <= now);
    if (this.o.zone !== undefined) {
      const local = usable.filter((i) => this.gv.catalog.nodeMeta(i.node)?.[this.o.zoneKey] === this.o.zone);
      if (local.length > 0) usable = local;
    }
    if (usable.some((i) => i.suspect)) {
      const settled = usable.filter((i) => !i.suspect);
      if (settled.length > 0) usable = settled;
    }
    if (usable.length === 0) return undefined;
    switch (this.o.strategy) {
      case 'round-robin': return usable[this.cursor++ % usable.length];
      case 'random': return usable[Math.floor(Math.random() * usable.length)];
      case 'weighted': {
        const total = usable.reduce((s, i) => s + i.weight, 0);
        let r = Math.random() * total;
        for (const i of usable) if ((r -= i.weight) < 0) return i;
        return usable[usable.length - 1];
      }
      default: {
        // Power of two choices over requests in flight.
        const a = usable[Math.floor(Math.random() * usable.length)] as Instance;
        const b = usable[Math.floor(Math.random() * usable.length)] as Instance;
        return this.stateOf(a).inFlight <= this.stateOf(b).inFlight ? a : b;
      }
    }
  }

  stateOf(i: Instance): Health {
    const key = keyOf(i);
    let h = this.health.get(key);
    if (h === undefined) {
      h = { inFlight: 0, failures: 0, ejections: 0, ejectedUntil: 0 };
      this.health.set(key, h);
    }
    return h;
  }

  poolFor(i: Instance, protocol: string): Pool {
    const key = keyOf(i);
    let pool = this.pools.get(key);
    if (pool === undefined) {
      pool = new Pool(`${protocol}//${i.hostPort}`, this.o.pool);
      this.pools.set(key, pool);
    }
    return pool;
  }

  succeeded(i: Instance): void {
    this.stateOf(i).failures = 0;
  }

  /** A 5xx or a connection error: after enough in a row the instance is ejected, if the share allows. */
  failed(i: Instance): void {
    const h = this.stateOf(i);
    h.failures++;
    if (h.failures < this.o.consecutiveErrors) return;
    const now = Date.now();
    const instances = this.gv.lookup(i.service);
    const ejected = instances.filter((x) => (this.health.get(keyOf(x))?.ejectedUntil ?? 0) > now).length;
    if ((ejected + 1) / Math.max(1, instances.length) > this.o.maxEjectedShare) return;
    h.ejectedUntil = now + Math.min(EJECTION_MAX_MS, this.o.ejectionMs * 2 ** h.ejections);
    this.ejectedUntilMax = Math.max(this.ejectedUntilMax, h.ejectedUntil);
    h.ejections++;
    h.failures = 0;
  }

  /** Takes one retry token, if the budget has one. */
  retryAllowed(): boolean {
    if (this.retryTokens < 1) return false;
    this.retryTokens -= 1;
    return true;
  }

  get maxRetries(): number {
    return this.o.retries;
  }

  /** Whether instance `i` is ejected now (for tests and metrics). */
  isEjected(i: Instance): boolean {
    return (this.health.get(keyOf(i))?.ejectedUntil ?? 0) > Date.now();
  }

  override async close(): Promise<void> {
    this.closed = true;
    this.unsubscribe();
    await Promise.all([...this.pools.values(), ...(this.passthrough === undefined ? [] : [this.passthrough])].map((p) => p.close()));
    this.pools.clear();
  }

  override async destroy(): Promise<void> {
    this.closed = true;
    this.unsubscribe();
    await Promise.all([...this.pools.values(), ...(this.passthrough === undefined ? [] : [this.passthrough])].map((p) => p.destroy()));
    this.pools.clear();
  }
}

/** What one attempt tells its call, whatever style the handlers speak. */
interface Hooks {
  /** The attempt started; `abort` cancels it. True the first time for the whole call. */
  started(abort: (reason: Error) => void): boolean;
  responded(statusCode: number): void;
  finished(): void;
  /** The attempt failed; true if another instance is being tried. */
  failed(error: Error): boolean;
}

/**
 * One request across its attempts: the caller's handler sees one start and one outcome. Legacy
 * handlers (Node's fetch, undici's request) are driven in their own style and new-style ones in
 * theirs, so no request pays for converting between the two.
 */
class Call {
  private readonly tried = new Set<string>();
  private attempts = 0;
  private began = false;
  private responded = false;
  private abortCurrent: ((reason: Error) => void) | undefined;
  private abortReason: Error | null = null;

  constructor(
    private readonly d: GrapevineDispatcher,
    private readonly service: string,
    private readonly tag: string | undefined,
    private readonly protocol: string,
    private readonly options: Dispatcher.DispatchOptions,
    private readonly inner: Dispatcher.DispatchHandler,
  ) {}

  /** Cancels the call, and whichever attempt is under way. */
  abort(reason: Error): void {
    this.abortReason = reason;
    this.abortCurrent?.(reason);
  }

  next(): void {
    const instance = this.d.choose(this.service, this.tag, this.tried);
    if (instance === undefined) return this.fail(new NoInstanceError(this.service));
    this.attempts++;
    this.tried.add(`${instance.node}\u0000${instance.id}`);
    const state = this.d.stateOf(instance);
    state.inFlight++;
    let done = false;
    const hooks: Hooks = {
      started: (abort) => {
        this.abortCurrent = abort;
        if (this.abortReason !== null) abort(this.abortReason);
        const first = !this.began;
        this.began = true;
        return first;
      },
      responded: (statusCode) => {
        this.responded = true;
        if (statusCode >= 500) this.d.failed(instance);
        else this.d.succeeded(instance);
      },
      finished: () => {
        if (done) return;
        done = true;
        state.inFlight--;
      },
      failed: (error) => {
        hooks.finished();
        if (!this.responded) this.d.failed(instance);
        if (!this.retryable(error)) return false;
        this.next();
        return true;
      },
    };
    const handler = this.inner.onRequestStart === undefined ? this.legacyAttempt(hooks) : this.attempt(hooks);
    this.d.poolFor(instance, this.protocol).dispatch({ ...this.options, origin: `${this.protocol}//${instance.hostPort}` }, handler);
  }

  /** An attempt for a legacy caller (onConnect, onHeaders, onData, onComplete, onError). */
  private legacyAttempt(h: Hooks): Dispatcher.DispatchHandler {
    const inner = this.inner;
    return {
      onConnect: (abort, context?: unknown) => {
        if (h.started((reason) => abort(reason))) (inner.onConnect as ((a: (e?: Error) => void, c?: unknown) => void) | undefined)?.((reason) => this.abort(reason ?? new Error('aborted')), context);
      },
      onHeaders: (statusCode, headers, resume, statusText) => {
        if (statusCode >= 200) h.responded(statusCode);
        return inner.onHeaders?.(statusCode, headers, resume, statusText) ?? true;
      },
      onData: (chunk) => inner.onData?.(chunk) ?? true,
      onComplete: (trailers) => {
        h.finished();
        inner.onComplete?.(trailers);
      },
      onError: (error) => {
        if (!h.failed(error)) this.fail(error);
      },
      onUpgrade: (statusCode, headers, socket) => {
        h.finished();
        inner.onUpgrade?.(statusCode, headers, socket);
      },
      onBodySent: (chunkSize, total) => inner.onBodySent?.(chunkSize, total),
      onResponseStarted: () => inner.onResponseStarted?.(),
    };
  }

  /** An attempt for a new-style caller; the caller holds a controller that follows the current attempt. */
  private attempt(h: Hooks): Dispatcher.DispatchHandler {
    const inner = this.inner;
    let controller: Dispatcher.DispatchController | undefined;
    const call = this;
    const proxy: Dispatcher.DispatchController = {
      get aborted() { return call.abortReason !== null; },
      get paused() { return controller?.paused ?? false; },
      get reason() { return call.abortReason; },
      abort: (reason: Error) => this.abort(reason),
      pause: () => controller?.pause(),
      resume: () => controller?.resume(),
    };
    return {
      onRequestStart: (c, context) => {
        controller = c;
        if (h.started((reason) => c.abort(reason))) inner.onRequestStart?.(proxy, context);
      },
      onRequestUpgrade: (_c, statusCode, headers, socket) => {
        h.finished();
        inner.onRequestUpgrade?.(proxy, statusCode, headers, socket);
      },
      onResponseStart: (_c, statusCode, headers, statusMessage) => {
        h.responded(statusCode);
        inner.onResponseStart?.(proxy, statusCode, headers, statusMessage);
      },
      onResponseData: (_c, chunk) => inner.onResponseData?.(proxy, chunk),
      onResponseEnd: (_c, trailers) => {
        h.finished();
        inner.onResponseEnd?.(proxy, trailers);
      },
      onResponseError: (_c, error) => {
        if (!h.failed(error)) this.fail(error, proxy);
      },
    };
  }

  /** Another instance may be tried: no response yet, not aborted, safe to repeat, within limits. */
  private retryable(error: Error): boolean {
    if (this.responded || this.abortReason !== null || this.attempts > this.d.maxRetries) return false;
    const body = this.options.body;
    const replayable = body === undefined || body === null || typeof body === 'string' || body instanceof Uint8Array;
    const notSent = NOT_SENT.has((error as { code?: string }).code ?? '');
    const method = String(this.options.method).toUpperCase();
    if (!replayable || !(notSent || IDEMPOTENT.has(method) || this.options.idempotent === true)) return false;
    // The budget guards instances from retry storms; a request that reached none added no load.
    return notSent || this.d.retryAllowed();
  }

  /** Ends the call with `error`, starting it first for a handler that has not seen a start. */
  private fail(error: Error, proxy?: Dispatcher.DispatchController): void {
    const first = !this.began;
    this.began = true;
    if (this.inner.onRequestStart === undefined) {
      if (first) this.inner.onConnect?.((reason) => this.abort(reason ?? new Error('aborted')));
      this.inner.onError?.(error);
      return;
    }
    const noop = (): void => undefined;
    const controller: Dispatcher.DispatchController = proxy ?? { aborted: false, paused: false, reason: null, abort: noop, pause: noop, resume: noop };
    if (first) this.inner.onRequestStart(controller, {});
    this.inner.onResponseError?.(controller, error);
  }
}

/** A Dispatcher for fetch/undici that routes requests by service name through `gv`'s catalog. */
export function createDispatcher(gv: Grapevine, options: DispatcherOptions = {}): Dispatcher & { isEjected(i: Instance): boolean } {
  return new GrapevineDispatcher(gv, options);
}
