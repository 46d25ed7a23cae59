/**
 * The human report of a run (or of runs compared side by side): a self-contained HTML page with
 * a summary table and SVG charts drawn here, no scripts, so it opens offline anywhere.
 */
import type { RunResult } from './run.js';
import type { ChurnFigures } from './churn.js';
import type { Distribution } from './metrics.js';

const COLORS = ['#2563eb', '#dc2626', '#16a34a', '#9333ea'];
const W = 640;
const H = 220;
const PAD = { left: 56, right: 16, top: 16, bottom: 36 };

interface Series { label: string; points: [number, number][] }

function escape(s: string): string {
  return s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');
}

function niceMax(v: number): number {
  if (!(v > 0)) return 1;
  const p = 10 ** Math.floor(Math.log10(v));
  for (const m of [1, 1.2, 1.5, 2, 2.5, 3, 4, 5, 6, 8, 10]) if (m * p >= v) return m * p;
  return 10 * p;
}

function axes(xMax: number, yMax: number, xLabel: string, yLabel: string): string {
  const parts: string[] = [];
  const iw = W - PAD.left - PAD.right;
  const ih = H - PAD.top - PAD.bottom;
  for (let i = 0; i <= 4; i++) {
    const y = PAD.top + ih - (ih * i) / 4;
    const x = PAD.left + (iw * i) / 4;
    parts.push(`<line x1="${PAD.left}" y1="${y}" x2="${W - PAD.right}" y2="${y}" stroke="#e5e7eb"/>`);
    parts.push(`<text x="${PAD.left - 6}" y="${y + 4}" text-anchor="end" font-size="11">${fmt((yMax * i) / 4)}</text>`);
    parts.push(`<text x="${x}" y="${H - PAD.bottom + 16}" text-anchor="middle" font-size="11">${fmt((xMax * i) / 4)}</text>`);
  }
  parts.push(`<text x="${PAD.left + iw / 2}" y="${H - 4}" text-anchor="middle" font-size="12">${escape(xLabel)}</text>`);
  parts.push(`<text x="12" y="${PAD.top + ih / 2}" text-anchor="middle" font-size="12" transform="rotate(-90 12 ${PAD.top + ih / 2})">${escape(yLabel)}</text>`);
  return parts.join('');
}

function fmt(v: number): string {
  if (v === 0) return '0';
  if (Math.abs(v) >= 1000) return `${(v / 1000).toFixed(v >= 10_000 ? 0 : 1)}k`;
  return Math.abs(v) >= 10 ? v.toFixed(0) : v.toFixed(Math.abs(v) >= 1 ? 1 : 2);
}

function legend(labels: string[]): string {
  return labels.map((l, i) => `<rect x="${PAD.left + 8 + i * 150}" y="${PAD.top}" width="10" height="10" fill="${COLORS[i % COLORS.length]}"/>`
    + `<text x="${PAD.left + 22 + i * 150}" y="${PAD.top + 9}" font-size="11">${escape(l)}</text>`).join('');
}

/** A line chart of one or more series. */
export function lineChart(title: string, series: Series[], xLabel: string, yLabel: string, yMaxFixed?: number): string {
  const xMax = niceMax(Math.max(1, ...series.flatMap((s) => s.points.map((p) => p[0]))));
  const yMax = yMaxFixed ?? niceMax(Math.max(0, ...series.flatMap((s) => s.points.map((p) => p[1]))));
  const iw = W - PAD.left - PAD.right;
  const ih = H - PAD.top - PAD.bottom;
  const lines = series.map((s, i) => {
    const d = s.points.map(([x, y], j) => `${j === 0 ? 'M' : 'L'}${(PAD.left + (x / xMax) * iw).toFixed(1)},${(PAD.top + ih - (Math.min(y, yMax) / yMax) * ih).toFixed(1)}`).join('');
    return `<path d="${d}" fill="none" stroke="${COLORS[i % COLORS.length]}" stroke-width="1.5"/>`;
  });
  return figure(title, axes(xMax, yMax, xLabel, yLabel) + lines.join('') + legend(series.map((s) => s.label)));
}

/** A histogram of values, one colour per series, bars side by side. */
export function histogram(title: string, series: { label: string; values: number[] }[], xLabel: string): string {
  const all = series.flatMap((s) => s.values);
  if (all.length === 0) return figure(title, `<text x="${W / 2}" y="${H / 2}" text-anchor="middle">no data</text>`);
  const bins = 20;
  const xMax = niceMax(all.reduce((m, v) => Math.max(m, v), 0)); // no spread: a 10,000-node run has a million values
  const counts = series.map((s) => {
    const c = new Array<number>(bins).fill(0);
    for (const v of s.values) c[Math.min(bins - 1, Math.floor((v / xMax) * bins))]! += 1;
    return c;
  });
  const yMax = niceMax(counts.flat().reduce((m, v) => Math.max(m, v), 0));
  const iw = W - PAD.left - PAD.right;
  const ih = H - PAD.top - PAD.bottom;
  const bw = iw / bins / series.length;
  const bars = counts.flatMap((c, si) => c.map((n, b) => {
    const h = (n / yMax) * ih;
    return `<rect x="${(PAD.left + (b * iw) / bins + si * bw).toFixed(1)}" y="${(PAD.top + ih - h).toFixed(1)}" width="${Math.max(1, bw - 1).toFixed(1)}" height="${h.toFixed(1)}" fill="${COLORS[si % COLORS.length]}"/>`;
  }));
  return figure(title, axes(xMax, yMax, xLabel, 'count') + bars.join('') + legend(series.map((s) => s.label)));
}

function figure(title: string, body: string): string {
  return `<figure><figcaption>${escape(title)}</figcaption><svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" viewBox="0 0 ${W} ${H}" font-family="sans-serif">${body}</svg></figure>`;
}

function dist(d: Distribution, unit = 'ms'): string {
  return d.count === 0 ? '-' : `${fmt(d.p50)} / ${fmt(d.p99)} / ${fmt(d.max)} ${unit} (n=${d.count})`;
}

/** The command line that reruns this run (custom latency models aside, which show in the report). */
export function replayCommand(r: RunResult): string {
  const p = r.params;
  const flags = [`--scenario ${r.scenario}`, `--nodes ${p.nodes}`, `--seconds ${p.seconds}`, `--seed ${p.seed}`];
  const n = p.network;
  if ((n.lossRate ?? 0) > 0) flags.push(`--loss ${n.lossRate}`);
  // Every network flag the CLI takes, so the command replays the same run (1 ms latency is the default).
  const latency = n.latency;
  if (typeof latency === 'number' && latency !== 1) flags.push(`--latencyMs ${latency}`);
  else if (typeof latency === 'object' && 'minMs' in latency) flags.push(`--latencyMs ${latency.minMs}`, `--jitterMs ${latency.maxMs - latency.minMs}`);
  else if (typeof latency === 'object' && 'medianMs' in latency) flags.push(`--latencyMs ${latency.medianMs}`, `--tailSigma ${latency.sigma}`);
  if (n.duplicateRate !== undefined) flags.push(`--dup ${n.duplicateRate}`);
  if (n.reorderRate !== undefined) flags.push(`--reorder ${n.reorderRate}`);
  if (n.mtuBytes !== undefined) flags.push(`--mtu ${n.mtuBytes}`);
  if (n.streamFailureRate !== undefined) flags.push(`--streamFailure ${n.streamFailureRate}`);
  for (const [k, v] of Object.entries(p.config)) flags.push(`--${k} ${String(v)}`);
  for (const [k, v] of Object.entries(p.options)) flags.push(`--${k} ${v}`);
  if (r.invariants !== undefined) flags.push('--check');
  return `npm run sim -- ${flags.join(' ')}`;
}

/** Rows of the summary table, shared by the console and the HTML report. */
export function summaryRows(r: RunResult): [string, string][] {
  const m = r.metrics;
  return [
    ['wall time', `${(r.wallMs / 1000).toFixed(1)} s, ${fmt(r.events)} events (${fmt(r.eventsPerWallSecond)}/s), peak RSS ${(r.peakRssBytes / 2 ** 20).toFixed(0)} MB`],
    ['join reaches all live nodes (p50 / p99 / max)', dist(m.joins)],
    ['crash: first suspicion', dist(m.detection.firstSuspect)],
    ['crash: first declares dead', dist(m.detection.firstDead)],
    ['crash: all live nodes agree', dist(m.detection.allDead)],
    ['false suspicions (events / members)', `${m.falseSuspicions.events} / ${m.falseSuspicions.members}`],
    ['false deaths of running members (events / members)', `${m.falseDeaths.events} / ${m.falseDeaths.members}`],
    ['  of which healthy members (no fault at all)', `${m.falseDeathsHealthy.events} / ${m.falseDeathsHealthy.members}`],
    ['messages per node per s (mean / max)', `${m.traffic.messagesPerNodePerS.mean.toFixed(2)} / ${m.traffic.messagesPerNodePerS.max.toFixed(2)}`],
    ['bytes per node per s (mean / max)', `${m.traffic.bytesPerNodePerS.mean.toFixed(0)} / ${m.traffic.bytesPerNodePerS.max.toFixed(0)}`],
    ['memory per member entry', m.memory.heapBytesPerMember === undefined ? 'n/a (run with --expose-gc)' : `${m.memory.heapBytesPerMember.toFixed(0)} bytes (${fmt(m.memory.members)} entries)`],
    ...churnRows(m.churn),
  ];
}

function churnRows(c: ChurnFigures | undefined): [string, string][] {
  if (c === undefined) return [];
  const violations = Object.entries(c.invariantViolations).map(([k, v]) => `${k} ${v}`).join(', ');
  return [
    ['churn: changes after warm-up', String(c.changes)],
    ['churn: dead instances served (goal 0)', String(c.deadInstancesServed)],
    ['churn: lookup gaps (count / total / max)', `${c.lookupGaps.count} / ${fmt(c.lookupGaps.totalMs)} / ${fmt(c.lookupGaps.maxMs)} ms`],
    ['churn: new life visible everywhere (p50 / p99 / max)', `${dist(c.visibleEverywhere)}${c.notVisible > 0 ? `, ${c.notVisible} not yet` : ''}`],
    ['churn: member events per change per observer', c.eventsPerChange.toFixed(2)],
    ['churn: all see all after the last start', c.allSeeAllMs === undefined ? 'not reached' : `${fmt(c.allSeeAllMs)} ms`],
    ['churn: distinct cluster sizes reported', String(c.distinctClusterSizes)],
    ['churn: invariant violations', violations === '' ? 'none' : `${violations}: ${c.firstViolations.join('; ')}`],
  ];
}

export function renderHtml(runs: RunResult[]): string {
  const first = runs[0] as RunResult;
  const p = first.params;
  const header = `${escape(first.scenario)}: ${p.nodes} nodes, ${p.seconds} s virtual, seed ${p.seed}`;
  const rows = summaryRows(first).map(([k], i) => `<tr><th>${escape(k)}</th>${runs.map((r) => `<td>${escape(summaryRows(r)[i]?.[1] ?? '')}</td>`).join('')}</tr>`);
  const t = (r: RunResult, pick: (s: RunResult['metrics']['samples'][number]) => number): [number, number][] =>
    r.metrics.samples.map((s) => [s.tMs / 1000, pick(s)]);
  return `<!doctype html><html><head><meta charset="utf-8"><title>${header}</title>
<style>body{font-family:sans-serif;max-width:980px;margin:24px auto;color:#111}table{border-collapse:collapse}
th,td{border:1px solid #ddd;padding:4px 8px;text-align:left;font-size:13px}figure{margin:16px 0}figcaption{font-weight:bold;margin-bottom:4px}
code{background:#f3f4f6;padding:1px 4px}</style></head><body>
<h1>grapevine simulation — ${header}</h1>
<p>Replay with <code>${escape(replayCommand(first))}</code>
 (network ${escape(JSON.stringify(p.network))}).</p>
<table><tr><th></th>${runs.map((r) => `<th>${escape(r.label)}</th>`).join('')}</tr>${rows.join('')}</table>
${lineChart('Membership convergence: share of live nodes each live node sees alive', runs.map((r) => ({ label: r.label, points: t(r, (s) => s.viewAccuracy) })), 'virtual time (s)', 'view accuracy', 1)}
${lineChart('Stale members: crashed or departed nodes still held alive or suspect, per live node', runs.map((r) => ({ label: r.label, points: t(r, (s) => s.staleMembers) })), 'virtual time (s)', 'members')}
${histogram('Crash detection time, per observer (crash to its own "dead")', runs.map((r) => ({ label: r.label, values: r.metrics.crashes.flatMap((c) => c.perObserverMs) })), 'ms after the crash')}
${lineChart('Messages sent per node per second', runs.map((r) => ({ label: r.label, points: t(r, (s) => s.messagesPerNodePerS) })), 'virtual time (s)', 'messages/s')}
${lineChart('Bytes sent per node per second', runs.map((r) => ({ label: r.label, points: t(r, (s) => s.bytesPerNodePerS) })), 'virtual time (s)', 'bytes/s')}
</body></html>
`;
}
