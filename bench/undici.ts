/**
 * `npm run bench:undici`: requests per second and p99 latency through the grapevine dispatcher
 * against undici's BalancedPool over the same three local HTTP servers, interleaved in one run
 * (the ratio is the figure); and heap per instance pool. Load comes from this process; loops
 * are bounded.
 */
import { createServer, type Server } from 'node:http';
import { BalancedPool, type Dispatcher, request } from 'undici';
import { createDispatcher } from '../src/client/undici.js';
import { Grapevine } from '../src/index.js';
import { fmt, median, table } from './util.js';

async function server(): Promise<{ s: Server; port: number }> {
  const s = createServer((_req, res) => res.end('ok'));
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
  return { s, port: (s.address() as { port: number }).port };
}

async function run(dispatcher: Dispatcher, url: string, ms: number, concurrency: number): Promise<{ rps: number; p99: number }> {
  const lat: number[] = [];
  const end = performance.now() + ms;
  await Promise.all(Array.from({ length: concurrency }, async () => {
    for (let i = 0; i < 1_000_000 && performance.now() < end; i++) {
      const t0 = performance.now();
      const res = await request(url, { dispatcher });
      await res.body.text();
      lat.push(performance.now() - t0);
    }
  }));
  lat.sort((x, y) => x - y);
  return { rps: lat.length / (ms / 1_000), p99: lat[Math.floor(lat.length * 0.99)] ?? Number.NaN };
}

export async function benchUndici(): Promise<void> {
  const servers = await Promise.all([server(), server(), server()]);
  const gv = await Grapevine.start({ name: 'bench-lb', bind: '127.0.0.1:0', profile: 'local' });
  try {
    for (const [i, { port }] of servers.entries()) await gv.register({ name: 'web', id: `w${i}`, port });
    const ours = createDispatcher(gv);
    const pool = new BalancedPool(servers.map(({ port }) => `http://127.0.0.1:${port}`));
    const a: { rps: number; p99: number }[] = [];
    const b: { rps: number; p99: number }[] = [];
    for (let round = 0; round < 3; round++) {
      b.push(await run(pool, 'http://127.0.0.1/', 1_500, 32));
      a.push(await run(ours, 'http://web/', 1_500, 32));
    }
    const med = (xs: { rps: number; p99: number }[], k: 'rps' | 'p99'): number => median(xs.map((x) => x[k]));
    console.log('\n## undici: GET through a dispatcher to 3 local servers, 32 concurrent, median of 3 interleaved 1.5 s rounds');
    console.log(table([
      ['dispatcher', 'requests/s', 'ratio', 'p99 ms'],
      ['undici BalancedPool (static list)', fmt(med(b, 'rps')), '1.00', fmt(med(b, 'p99'), 2)],
      ['grapevine createDispatcher (catalog, least-request)', fmt(med(a, 'rps')), fmt(med(a, 'rps') / med(b, 'rps'), 2), fmt(med(a, 'p99'), 2)],
    ]));
    await Promise.all([ours.close(), pool.close()]);
    // Heap per instance pool: 200 instances, one request each, then measure.
    globalThis.gc?.();
    const before = process.memoryUsage().heapUsed;
    const many = createDispatcher(gv, { strategy: 'round-robin' });
    for (let i = 0; i < 200; i++) await gv.register({ name: 'many', id: `m${i}`, port: servers[i % 3]?.port ?? 0 });
    for (let i = 0; i < 200; i++) await (await request('http://many/', { dispatcher: many })).body.text();
    globalThis.gc?.();
    console.log(`\nheap per instance pool (200 instances, each used once): ${fmt((process.memoryUsage().heapUsed - before) / 200 / 1024, 1)} KiB`);
    await many.close();
  } finally {
    await gv.close();
    for (const { s } of servers) s.close();
  }
}

if (import.meta.url === `file://${process.argv[1]}`) await benchUndici();
