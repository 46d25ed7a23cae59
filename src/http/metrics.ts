/**
 * grapevine's metrics for Prometheus, through prom-client (a dependency, loaded only here and
 * only when metrics are asked for). Every figure is read when Prometheus scrapes, from the
 * member's counters and catalog, so nothing is counted twice and an idle member does no work
 * for its metrics. `metrics: { registry }` adds them to a service's own registry; the HTTP
 * API's /metrics uses that registry if there is one, else its own.
 *
 * The probe and push-pull histograms are the core's own (src/core/histogram.ts: it times them
 * from the `now`s it is given). prom-client has no way to set a histogram's buckets, so each
 * scrape replays what the core observed since the last one into a prom-client Histogram:
 * per bucket, the new observations at their mean (which lies in that bucket), so buckets,
 * count and sum come out as the core's. Once a probe interval, so a scrape replays a few.
 */
import type { Grapevine } from '../runtime/index.js';
import { InvalidOptionError, packageVersion } from '../runtime/index.js';

type PromClient = typeof import('prom-client');
type Registry = import('prom-client').Registry;
type CoreHistogram = ReturnType<Grapevine['stats']>['core']['probeRttMs'];

export interface Metrics {
  readonly registry: Registry;
  /** Counts one HTTP request and its duration by route (the HTTP API calls this; blocking reads count their wait too, as Consul's). */
  httpRequest(method: string, route: string, code: number, seconds: number): void;
}

const byMember = new WeakMap<Grapevine, Metrics>();

async function promClient(): Promise<PromClient> {
  try {
    return await import('prom-client');
  } catch {
    throw new InvalidOptionError('metrics', 'needs the prom-client package, which grapevine-registry depends on: reinstall it, or npm install prom-client');
  }
}

/** The member's metrics if something asked for them already (counting requests must not load prom-client). */
export function loadedMetrics(gv: Grapevine): Metrics | undefined {
  return byMember.get(gv);
}

/** The member's metrics, registered once: in `registry` if given, else in a registry of their own. */
export async function metricsOf(gv: Grapevine, registry?: Registry): Promise<Metrics> {
  const existing = byMember.get(gv);
  if (existing !== undefined) return existing;
  const prom = await promClient();
  const reg = registry ?? new prom.Registry();
  // Process and heap metrics in our own registry; a service's registry has its own if it wants them.
  if (registry === undefined) prom.collectDefaultMetrics({ register: reg });
  const metrics = define(prom, reg, gv);
  byMember.set(gv, metrics);
  return metrics;
}

function define(prom: PromClient, registry: Registry, gv: Grapevine): Metrics {
  const registers = [registry];
  const core = (): ReturnType<Grapevine['stats']>['core'] => gv.stats().core;
  const transport = (): ReturnType<Grapevine['stats']>['transport'] => gv.stats().transport;
  /** A counter whose value is read at scrape time from one of the member's totals. */
  const total = (name: string, help: string, read: () => number): void => {
    new prom.Counter({
      name, help, registers,
      collect() {
        this.reset();
        this.inc(read());
      },
    });
  };
  new prom.Gauge({
    name: 'grapevine_members', help: 'Members this node knows, by state.', labelNames: ['state'], registers,
    collect() {
      const counts: Record<string, number> = { alive: 0, suspect: 0, dead: 0, left: 0 };
      for (const m of gv.members()) counts[m.state] = (counts[m.state] ?? 0) + 1;
      for (const [state, n] of Object.entries(counts)) this.set({ state }, n);
    },
  });
  total('grapevine_probes_total', 'Direct probes sent.', () => core().probes);
  total('grapevine_probes_failed_total', 'Direct probes without an ack in time (then probed indirectly).', () => core().probesFailed);
  total('grapevine_indirect_probes_total', 'Ping-reqs sent to helpers for indirect probes.', () => core().indirectProbes);
  total('grapevine_suspicions_total', 'Members this node started to suspect.', () => core().suspicions);
  total('grapevine_suspicions_refuted_total', 'Suspected members later seen alive again.', () => core().suspicionsRefuted);
  total('grapevine_deaths_declared_total', 'Deaths this node declared when a suspicion ran out.', () => core().deathsDeclared);
  total('grapevine_refutations_total', 'Times this node refuted a suspicion or death notice about itself.', () => core().refutations);
  total('grapevine_push_pulls_total', 'Full-state exchanges this node started.', () => core().pushPulls);
  total('grapevine_record_pulls_total', 'Records this node pulled over streams.', () => core().recordPulls);
  total('grapevine_events_dropped_total', 'Core events discarded because they were not drained in time.', () => core().eventsDropped);
  /** A transport total by direction and kind: `read` gives [udp in, udp out, tcp in, tcp out]. */
  const byDirection = (name: string, help: string, read: (t: ReturnType<typeof transport>) => [number, number, number, number]): void => {
    new prom.Counter({
      name, help, labelNames: ['direction', 'kind'], registers,
      collect() {
        const [udpIn, udpOut, tcpIn, tcpOut] = read(transport());
        this.reset();
        this.inc({ direction: 'in', kind: 'udp' }, udpIn);
        this.inc({ direction: 'out', kind: 'udp' }, udpOut);
        this.inc({ direction: 'in', kind: 'tcp' }, tcpIn);
        this.inc({ direction: 'out', kind: 'tcp' }, tcpOut);
      },
    });
  };
  byDirection('grapevine_packets_total', 'UDP datagrams and TCP streams, by direction.', (t) => [t.udpPacketsIn, t.udpPacketsOut, t.streamsIn, t.streamsOut]);
  byDirection('grapevine_bytes_total', 'Bytes on the wire, by direction and transport.', (t) => [t.udpBytesIn, t.udpBytesOut, t.tcpBytesIn, t.tcpBytesOut]);
  new prom.Counter({
    name: 'grapevine_dropped_total', help: 'Peer input rejected, by reason (malformed, wrong key, replayed...).', labelNames: ['reason'], registers,
    collect() {
      this.reset();
      for (const [reason, n] of Object.entries(core().dropped)) this.inc({ reason }, n);
    },
  });
  /** One of the core's histograms (ms), as a prom-client Histogram in seconds: what is new at each scrape is replayed into it. */
  const coreHistogram = (name: string, help: string, read: () => CoreHistogram): void => {
    const boundsMs = read().boundsMs;
    const boundsS = boundsMs.map((b) => b / 1_000);
    const seenCounts = new Float64Array(boundsMs.length + 1);
    const seenSumsMs = new Float64Array(boundsMs.length + 1);
    new prom.Histogram({
      name, help, buckets: boundsS, registers,
      collect() {
        const h = read();
        for (let i = 0; i <= boundsS.length; i++) {
          const n = (h.counts[i] as number) - (seenCounts[i] as number);
          if (n <= 0) continue;
          const meanS = ((h.sumsMs[i] as number) - (seenSumsMs[i] as number)) / n / 1_000;
          const valueS = inBucket(meanS, boundsS, i);
          for (let k = 0; k < n; k++) this.observe(valueS);
          seenCounts[i] = h.counts[i] as number;
          seenSumsMs[i] = h.sumsMs[i] as number;
        }
      },
    });
  };
  coreHistogram('grapevine_probe_rtt_seconds', 'Probes acked directly: time from the ping to its ack (memberlist probeNode). Probes answered through helpers or the stream path are not timed.', () => core().probeRttMs);
  coreHistogram('grapevine_push_pull_duration_seconds', 'Push-pulls this node started and got an answer to: time from the request to the answer merged (memberlist pushPullNode).', () => core().pushPullMs);
  new prom.Gauge({
    name: 'grapevine_broadcast_queue_depth', help: 'Broadcasts waiting to be gossiped (memberlist queue.broadcasts).', registers,
    collect() {
      this.set(core().broadcastQueueDepth);
    },
  });
  new prom.Gauge({
    name: 'grapevine_health_score', help: 'Lifeguard local health score (0 is healthy; higher: this process answers slowly).', registers,
    collect() {
      this.set(gv.healthScore);
    },
  });
  new prom.Gauge({
    name: 'grapevine_catalog_instances', help: 'Service instances in this node\'s catalog, by service and health.', labelNames: ['service', 'health'], registers,
    collect() {
      this.reset();
      for (const service of gv.services()) {
        const counts: Record<string, number> = { passing: 0, warning: 0, critical: 0 };
        for (const i of gv.lookup(service)) counts[i.health] = (counts[i.health] ?? 0) + 1;
        for (const [health, n] of Object.entries(counts)) this.set({ service, health }, n);
      }
    },
  });
  new prom.Counter({
    name: 'grapevine_dns_queries_total', help: 'DNS queries, by outcome: answered, dropped (rate limit, undecodable), truncated.', labelNames: ['outcome'], registers,
    collect() {
      const dns = gv.stats().interfaces.dns;
      this.reset();
      if (dns === undefined) return;
      for (const outcome of ['queries', 'dropped', 'truncated']) this.inc({ outcome: outcome === 'queries' ? 'answered' : outcome }, dns[outcome] ?? 0);
    },
  });
  new prom.Gauge({
    name: 'grapevine_build_info', help: 'Always 1: the version running, and the member.', labelNames: ['version', 'member'], registers,
    collect() {
      this.set({ version: packageVersion(), member: gv.name }, 1);
    },
  });
  const http = new prom.Counter({ name: 'grapevine_http_requests_total', help: 'HTTP API requests, by method and status code.', labelNames: ['method', 'code'], registers });
  const duration = new prom.Histogram({
    name: 'grapevine_http_request_duration_seconds', help: 'HTTP API requests by route: time to answer, blocking waits included.',
    labelNames: ['method', 'route'], buckets: [0.001, 0.005, 0.025, 0.1, 0.5, 2.5, 10, 60, 300, 600], registers,
  });
  return {
    registry,
    httpRequest: (method, route, code, seconds) => {
      http.inc({ method, code: String(code) });
      duration.observe({ method, route }, seconds);
    },
  };
}

/**
 * `valueS` moved into bucket `i` of `boundsS` (upper bounds; the last bucket is above them all),
 * if rounding of a mean put it on a neighbour's side of a bound.
 */
function inBucket(valueS: number, boundsS: readonly number[], i: number): number {
  const upper = boundsS[i];
  const lower = boundsS[i - 1];
  let v = upper === undefined ? valueS : Math.min(valueS, upper);
  if (lower !== undefined && !(v > lower)) v = upper === undefined ? lower * (1 + 1e-9) : lower + (upper - lower) * 1e-9;
  return v;
}

/** The ExtensionStarter for start() option `metrics: { registry }`. */
export async function serveMetrics(gv: Grapevine, value: unknown): Promise<{ close(): Promise<void> }> {
  const registry = (value as { registry?: Registry } | null)?.registry;
  if (value === null || typeof value !== 'object' || (registry !== undefined && typeof (registry as { metrics?: unknown }).metrics !== 'function')) {
    throw new InvalidOptionError('metrics', 'must be { registry } with a prom-client Registry');
  }
  await metricsOf(gv, registry);
  return { close: async () => undefined };
}
