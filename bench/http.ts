/**
 * `npm run bench:http`: the HTTP API on 127.0.0.1. (1) How soon a blocked query returns after
 * a change to its service (p50/p99 over 200 changes). (2) 4,096 blocked queries held: memory
 * and CPU while held, and how long one change takes to wake them all. (3) Requests per second
 * for GET /v1/health/service/:name against a bare node:http server answering the same JSON,
 * interleaved in the same run (the ratio is the figure; the machine is shared and noisy).
 * Every loop is bounded in count and time; load comes from this process.
 */
import { Agent, createServer, request } from 'node:http';
import { Grapevine } from '../src/index.js';
import { fmt, median, table } from './util.js';

const agent = new Agent({ keepAlive: true, maxSockets: Number.POSITIVE_INFINITY });

function get(addr: string, path: string): Promise<{ status: number; body: string; index: number }> {
  const [host, port] = addr.split(':');
  return new Promise((resolve, reject) => {
    const req = request({ host, port: Number(port), path, agent }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => (body += c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body, index: Number(res.headers['x-consul-index'] ?? 0) }));
    });
    req.once('error', reject);
    req.end();
  });
}

const quantile = (xs: number[], q: number): number => xs.slice().sort((a, b) => a - b)[Math.min(xs.length - 1, Math.floor(q * xs.length))] as number;

async function wakeLatency(gv: Grapevine, http: string): Promise<number[]> {
  const samples: number[] = [];
  for (let i = 0; i < 200; i++) {
    const { index } = await get(http, '/v1/health/service/wake');
    let changedAt = 0;
    const blocked = get(http, `/v1/health/service/wake?index=${index}&wait=10s`).then(() => performance.now() - changedAt);
    await new Promise((r) => setTimeout(r, 2));
    changedAt = performance.now();
    if (i % 2 === 0) await gv.register({ name: 'wake', id: 'w', port: 1 });
    else await gv.deregister('w');
    samples.push(await blocked);
  }
  return samples;
}

async function heldQueries(gv: Grapevine, http: string, count: number): Promise<string[][]> {
  const { index } = await get(http, '/v1/health/service/held');
  globalThis.gc?.();
  const before = { rss: process.memoryUsage().rss, heap: process.memoryUsage().heapUsed };
  let woken = 0;
  const all = Array.from({ length: count }, () => get(http, `/v1/health/service/held?index=${index}&wait=60s`).then(() => void woken++));
  // Loopback delivers 4,096 requests in well under a second; 2 s lets the server hold them all.
  await new Promise((r) => setTimeout(r, 2_000));
  if (woken > 0) throw new Error(`${woken} blocked queries returned before any change`);
  globalThis.gc?.();
  const heldMem = { rss: process.memoryUsage().rss, heap: process.memoryUsage().heapUsed };
  const cpu0 = process.cpuUsage();
  const t0 = performance.now();
  await new Promise((r) => setTimeout(r, 3_000));
  const cpu = process.cpuUsage(cpu0);
  const idleCpu = ((cpu.user + cpu.system) / 1_000 / (performance.now() - t0)) * 100;
  // A change elsewhere must wake none of them.
  await gv.register({ name: 'elsewhere', port: 1 });
  await new Promise((r) => setTimeout(r, 200));
  const wokenByOther = woken;
  const changedAt = performance.now();
  await gv.register({ name: 'held', port: 1 });
  await Promise.all(all);
  const wakeAllMs = performance.now() - changedAt;
  return [
    ['queries held', String(count)],
    ['RSS / heap growth while held (MB, client and server in this process)', `${fmt((heldMem.rss - before.rss) / 1e6, 1)} / ${fmt((heldMem.heap - before.heap) / 1e6, 1)}`],
    ['CPU while held, 3 s (% of one core, client and server)', fmt(idleCpu, 2)],
    ['woken by a change to another service', String(wokenByOther)],
    ['one change to their service: all answered after (ms)', fmt(wakeAllMs, 1)],
  ];
}

async function requestRate(addr: string, path: string, ms: number, concurrency: number): Promise<number> {
  let done = 0;
  const end = performance.now() + ms;
  await Promise.all(Array.from({ length: concurrency }, async () => {
    for (let i = 0; i < 1_000_000 && performance.now() < end; i++) {
      await get(addr, path);
      done++;
    }
  }));
  return done / (ms / 1_000);
}

export async function benchHttp(): Promise<void> {
  const gv = await Grapevine.start({ name: 'bench-http', bind: '127.0.0.1:0', profile: 'local', http: { bind: '127.0.0.1:0', blockingQueriesMax: 8_192 } });
  const http = gv.listening('http') as string;
  try {
    const wake = await wakeLatency(gv, http);
    console.log('\n## HTTP: a blocked query after a change to its service (200 changes)');
    console.log(table([['p50 ms', 'p99 ms', 'max ms'], [fmt(quantile(wake, 0.5), 2), fmt(quantile(wake, 0.99), 2), fmt(Math.max(...wake), 2)]]));

    console.log('\n## HTTP: 4,096 blocked queries');
    console.log(table([['figure', 'value'], ...(await heldQueries(gv, http, 4_096))]));

    for (let i = 0; i < 10; i++) await gv.register({ name: 'web', id: `web-${i}`, port: 8000 + i, tags: ['v2'], meta: { zone: 'eu' } });
    const path = '/v1/health/service/web';
    const json = (await get(http, path)).body;
    const bare = createServer((_req, res) => {
      res.writeHead(200, { 'Content-Type': 'application/json' });
      res.end(json);
    });
    await new Promise<void>((r) => bare.listen(0, '127.0.0.1', r));
    const bareAddr = `127.0.0.1:${(bare.address() as { port: number }).port}`;
    const ours: number[] = [];
    const base: number[] = [];
    for (let round = 0; round < 3; round++) {
      base.push(await requestRate(bareAddr, path, 1_500, 32));
      ours.push(await requestRate(http, path, 1_500, 32));
    }
    bare.close();
    console.log(`\n## HTTP: GET ${path} (10 instances, ${json.length} bytes), 32 concurrent keep-alive clients in this process, median of 3 interleaved 1.5 s rounds`);
    console.log(table([['server', 'requests/s', 'ratio'], ['bare node:http, same JSON', fmt(median(base)), '1.00'], ['grapevine HTTP API', fmt(median(ours)), fmt(median(ours) / median(base), 2)]]));
  } finally {
    await gv.close();
    agent.destroy();
  }
}

if (import.meta.url === `file://${process.argv[1]}`) await benchHttp();
