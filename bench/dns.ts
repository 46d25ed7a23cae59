/**
 * `npm run bench:dns`: the DNS interface on 127.0.0.1. (1) SRV queries per second against a
 * minimal dns-packet server answering a fixed record, interleaved in the same run (the ratio
 * is the figure). (2) Latency p50/p99 at a paced rate below that maximum. (3) Time from a
 * registration on one member to its first SRV answer on another. Load comes from this process
 * over one UDP socket with a bounded window of queries in flight; every loop is bounded.
 */
import { createSocket, type Socket } from 'node:dgram';
import dnsPacket from 'dns-packet';
import { Grapevine } from '../src/index.js';
import { fmt, median, table } from './util.js';

const QUESTION = { type: 'SRV' as const, name: 'web.service.grapevine' };

function fixedServer(): Promise<{ port: number; close: () => void }> {
  const s = createSocket('udp4');
  const answers = [{ name: QUESTION.name, type: 'SRV' as const, ttl: 0, data: { priority: 1, weight: 1, port: 8080, target: 'a.node.grapevine' } }];
  s.on('message', (msg, r) => {
    try {
      const q = dnsPacket.decode(msg);
      s.send(dnsPacket.encode({ id: q.id ?? 0, type: 'response', flags: dnsPacket.AUTHORITATIVE_ANSWER, questions: q.questions ?? [], answers }), r.port, r.address);
    } catch {
      // ignore
    }
  });
  return new Promise((resolve) => s.bind(0, '127.0.0.1', () => resolve({ port: s.address().port, close: () => s.close() })));
}

/** Queries `port` for `ms` with `window` queries in flight (or paced to `rate` a second); latencies in ms. */
async function load(port: number, ms: number, window: number, rate?: number): Promise<{ qps: number; latencies: number[] }> {
  const s: Socket = createSocket('udp4');
  await new Promise<void>((r) => s.bind(0, '127.0.0.1', r));
  const sentAt = new Map<number, number>();
  const latencies: number[] = [];
  let id = 0;
  let answered = 0;
  const end = performance.now() + ms;
  const send = (): void => {
    id = (id + 1) & 0xffff;
    sentAt.set(id, performance.now());
    s.send(dnsPacket.encode({ type: 'query', id, questions: [QUESTION] }), port, '127.0.0.1');
  };
  await new Promise<void>((resolve) => {
    s.on('message', (msg) => {
      const at = sentAt.get(msg.readUInt16BE(0));
      if (at === undefined) return;
      sentAt.delete(msg.readUInt16BE(0));
      latencies.push(performance.now() - at);
      answered++;
      if (rate === undefined && performance.now() < end) send();
    });
    if (rate === undefined) for (let i = 0; i < window; i++) send();
    else {
      const timer = setInterval(() => {
        if (performance.now() >= end) return clearInterval(timer);
        for (let i = 0; i < rate / 100; i++) send();
      }, 10);
    }
    setTimeout(resolve, ms + 300);
  });
  s.close();
  return { qps: answered / (ms / 1_000), latencies };
}

const p = (xs: number[], q: number): number => xs.slice().sort((a, b) => a - b)[Math.min(xs.length - 1, Math.floor(q * xs.length))] ?? Number.NaN;

export async function benchDns(): Promise<void> {
  const a = await Grapevine.start({ name: 'a', bind: '127.0.0.1:0', profile: 'local', dns: { bind: '127.0.0.1:0', rateLimit: 1_000_000 } });
  const b = await Grapevine.start({ name: 'b', bind: '127.0.0.1:0', profile: 'local', seeds: [a.address] });
  const fixed = await fixedServer();
  try {
    for (let i = 0; i < 3; i++) await b.register({ name: 'web', id: `web-${i}`, port: 8080 + i });
    while (a.lookup('web').length < 3) await new Promise((r) => setTimeout(r, 20));
    const port = Number((a.listening('dns') as string).split(':')[1]);
    const ours: number[] = [];
    const base: number[] = [];
    for (let round = 0; round < 3; round++) {
      base.push((await load(fixed.port, 1_500, 64)).qps);
      ours.push((await load(port, 1_500, 64)).qps);
    }
    console.log('\n## DNS: SRV queries per second, 64 in flight from one UDP socket, median of 3 interleaved 1.5 s rounds');
    console.log(table([['server', 'queries/s', 'ratio'], ['dns-packet server, one fixed SRV', fmt(median(base)), '1.00'], ['grapevine (3 SRV + 3 A from the catalog)', fmt(median(ours)), fmt(median(ours) / median(base), 2)]]));
    const rate = Math.floor((median(ours) * 0.7) / 100) * 100;
    const paced = await load(port, 3_000, 0, rate);
    console.log(`\n## DNS: latency at ${fmt(rate)} queries/s (70% of the maximum above), 3 s`);
    console.log(table([['p50 ms', 'p99 ms', 'answered/s'], [fmt(p(paced.latencies, 0.5), 3), fmt(p(paced.latencies, 0.99), 3), fmt(paced.qps)]]));

    // Registration on b to its first SRV answer from a.
    const spreads: number[] = [];
    const s = createSocket('udp4');
    await new Promise<void>((r) => s.bind(0, '127.0.0.1', r));
    for (let i = 0; i < 20; i++) {
      const name = `spread${i}`;
      const t0 = performance.now();
      await b.register({ name, port: 9000 });
      for (let tries = 0; tries < 2_000; tries++) {
        const reply = await new Promise<Buffer | undefined>((resolve) => {
          const timer = setTimeout(() => resolve(undefined), 200);
          s.once('message', (m) => {
            clearTimeout(timer);
            resolve(m);
          });
          s.send(dnsPacket.encode({ type: 'query', id: tries, questions: [{ type: 'SRV', name: `${name}.service.grapevine` }] }), port, '127.0.0.1');
        });
        if (reply !== undefined && (dnsPacket.decode(reply).answers ?? []).length > 0) break;
        await new Promise((r) => setTimeout(r, 2));
      }
      spreads.push(performance.now() - t0);
    }
    s.close();
    console.log('\n## DNS: registration on one member to its first SRV answer from another (20 registrations, local profile)');
    console.log(table([['p50 ms', 'p99 ms', 'max ms'], [fmt(p(spreads, 0.5), 1), fmt(p(spreads, 0.99), 1), fmt(Math.max(...spreads), 1)]]));
  } finally {
    fixed.close();
    await Promise.all([a.close(), b.close()]);
  }
}

if (import.meta.url === `file://${process.argv[1]}`) await benchDns();
