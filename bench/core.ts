/**
 * Core cost per protocol period and per received packet, for member tables of 100, 1,000 and
 * 10,000. One core is driven on virtual time; its peers are simulated outside the timed calls
 * (each ping is answered with an ack), so the figures are the core's own CPU cost.
 */
import { Membership } from '../src/core/membership.js';
import { seededRng } from '../src/core/rng.js';
import { decodePacket, encodePacket, MemberState, MessageType, type Message, type PushPullEntry, withRecord } from '../src/core/wire.js';
import { fmt, median, table, withGcCount } from './util.js';

const LIMITS = { nameBytesMax: 128, addrBytesMax: 128, carriedRecordBytesMax: 512, recordBytesMax: 65_536, membersMax: 100_000, messagesMax: 256 };

function peerName(i: number): string {
  return `node-${i}`;
}

function buildCore(n: number): Membership {
  const core = new Membership({ name: 'self', addr: 'self:7946', rng: seededRng(n), nowMs: 0 });
  const members: PushPullEntry[] = Array.from({ length: n - 1 }, (_, i) => ({
    name: peerName(i), addr: `10.0.${i >> 8}.${i & 255}:7946`, ...withRecord(new Uint8Array(24).fill(i & 255)),
    aliveIncarnation: 1, incarnation: 1, state: MemberState.Alive,
  }));
  core.handleStream(0, 'seed', encodePacket([{ type: MessageType.PushPull, join: true, reply: true, members }]));
  // A large table is merged in chunks, a millisecond apart.
  for (let t = 1; core.members().length < n && t < 1_000; t++) core.handleTimeout(t);
  drain(core);
  return core;
}

function drain(core: Membership): Message[] {
  const pings: Message[] = [];
  for (let t = core.pollTransmit(); t !== undefined; t = core.pollTransmit()) {
    if (t.stream) continue;
    const r = decodePacket(t.bytes, LIMITS);
    if (r.ok) for (const m of r.messages) if (m.type === MessageType.Ping) pings.push(m);
  }
  while (core.pollEvent() !== undefined);
  return pings;
}

interface PeriodFigures { usPerPeriod: number; usPerTimeout: number; timeouts: number; packetsOut: number; bytesOut: number }

/** Drives `seconds` of virtual time; every ping is acked by its target 1 ms later. */
function runPeriods(core: Membership, startMs: number, seconds: number): PeriodFigures {
  let now = startMs;
  const end = startMs + seconds * 1_000;
  let coreNs = 0n;
  let timeouts = 0;
  const before = { packets: core.stats.packetsOut, bytes: core.stats.bytesOut };
  const acks: { atMs: number; bytes: Uint8Array }[] = [];
  for (let guard = 0; guard < 10_000_000; guard++) {
    const deadline = core.pollTimeoutMs() ?? end;
    const ack = acks[0];
    const next = ack !== undefined && ack.atMs <= deadline ? ack.atMs : deadline;
    if (next > end) break;
    now = next;
    const t0 = process.hrtime.bigint();
    if (ack !== undefined && ack.atMs === next) {
      acks.shift();
      core.handleDatagram(now, 'peer', ack.bytes);
    } else {
      core.handleTimeout(now);
      timeouts++;
    }
    coreNs += process.hrtime.bigint() - t0;
    for (const ping of drain(core)) {
      if (ping.type === MessageType.Ping) acks.push({ atMs: now + 1, bytes: encodePacket([{ type: MessageType.Ack, seq: ping.seq }]) });
    }
  }
  return {
    usPerPeriod: Number(coreNs) / 1_000 / seconds,
    usPerTimeout: Number(coreNs) / 1_000 / Math.max(1, timeouts),
    timeouts,
    packetsOut: core.stats.packetsOut - before.packets,
    bytesOut: core.stats.bytesOut - before.bytes,
  };
}

/** Median µs per handleDatagram over the given packets (each handled once per round). */
function perPacket(core: Membership, packets: Uint8Array[], nowMs: number, from = 'peer'): number {
  const samples: number[] = [];
  for (const bytes of packets) {
    const t0 = process.hrtime.bigint();
    core.handleDatagram(nowMs, from, bytes);
    samples.push(Number(process.hrtime.bigint() - t0) / 1_000);
    drain(core);
  }
  return median(samples);
}

function gossipPacket(n: number, first: number, incarnation: number): Uint8Array {
  const messages: Message[] = [];
  for (let i = 0; i < 20; i++) {
    const idx = (first + i) % (n - 1);
    messages.push({ type: MessageType.Alive, node: peerName(idx), incarnation, addr: `10.0.${idx >> 8}.${idx & 255}:7946`, ...withRecord(new Uint8Array(24).fill(idx & 255)) });
  }
  return encodePacket(messages);
}

export function benchCore(): void {
  const rows: (string | number)[][] = [[
    'members', 'µs/period idle', 'µs/timeout idle', 'µs/period gossiping', 'pkts out/s idle', 'bytes out/s idle',
    'µs/ping in', 'µs/gossip pkt (old news)', 'µs/gossip pkt (20 updates)', 'heap B/period idle', 'GCs', 'setup ms',
  ]];
  for (const n of [100, 1_000, 10_000]) {
    const t0 = process.hrtime.bigint();
    const core = buildCore(n);
    const setupMs = Number(process.hrtime.bigint() - t0) / 1e6;
    let now = 0;
    const run = (seconds: number): PeriodFigures => {
      const f = runPeriods(core, now, seconds);
      now += seconds * 1_000;
      return f;
    };
    run(60); // warm up: JIT, first probe round
    // Pings from a member, named and at its address, as members send them (strangers get rate-limited bare acks).
    const pings = Array.from({ length: 2_000 }, (_, i) => encodePacket([{ type: MessageType.Ping, seq: i, target: 'self', source: peerName(0) }]));
    const oldNews = Array.from({ length: 2_000 }, (_, i) => gossipPacket(n, i * 20, 1));
    const news = Array.from({ length: 200 }, (_, i) => gossipPacket(n, i * 20, 2 + Math.floor((i * 20) / (n - 1))));
    const pingUs = perPacket(core, pings, now, '10.0.0.0:7946');
    const oldUs = perPacket(core, oldNews, now);
    const newsUs = perPacket(core, news, now);
    if (Object.keys(core.stats.dropped).length > 0) throw new Error(`bench input was dropped: ${JSON.stringify(core.stats.dropped)}`);
    const gossiping = run(30); // the updates just received are being passed on
    run(600); // let the queue drain: 4,000 updates x up to 20 sends each
    const idle = run(120);
    globalThis.gc?.();
    const heapBefore = process.memoryUsage().heapUsed;
    const allocSeconds = 30;
    const { gcs } = withGcCount(() => run(allocSeconds));
    const heapPerPeriod = (process.memoryUsage().heapUsed - heapBefore) / allocSeconds;
    rows.push([
      n, fmt(idle.usPerPeriod, 1), fmt(idle.usPerTimeout, 1), fmt(gossiping.usPerPeriod, 1), fmt(idle.packetsOut / 120, 1),
      fmt(idle.bytesOut / 120), fmt(pingUs, 1), fmt(oldUs, 1), fmt(newsUs, 1),
      globalThis.gc === undefined ? 'n/a' : fmt(heapPerPeriod), gcs, fmt(setupMs),
    ]);
  }
  console.log('\n## core: cost per protocol period (1 s virtual, LAN profile) and per received packet');
  console.log(table(rows));
  console.log('(µs/period: core CPU for one virtual second of probe, gossip and push-pull timeouts plus the acks that come back;');
  console.log(' "gossiping": the 30 s after 4,000 updates arrived; heap B/period: heap growth per idle period after a forced GC,');
  console.log(' including the bench\'s own decoding of outgoing pings; "GCs" > 0 means a collection blurred it)');
}

/** Median µs per push-pull request handled, each from a new joiner (so the table changes every time). */
function perPushPull(core: Membership, count: number, startMs: number, gapMs: number, tag: string): number {
  const samples: number[] = [];
  for (let i = 0; i < count; i++) {
    const joiner: PushPullEntry = { name: `${tag}-${i}`, addr: `10.9.${i >> 8}.${i & 255}:7946`, ...withRecord(), aliveIncarnation: 1, incarnation: 1, state: MemberState.Alive };
    const request = encodePacket([{ type: MessageType.PushPull, join: true, reply: false, members: [joiner] }]);
    const t0 = process.hrtime.bigint();
    core.handleStream(startMs + i * gapMs, 'joiner', request);
    samples.push(Number(process.hrtime.bigint() - t0) / 1_000);
    drain(core);
  }
  return median(samples);
}

/**
 * What answering a push-pull request costs: the whole table is encoded at most 10 times a second
 * and kept while unchanged, so a burst of requests mostly reuses it. Baseline: encoding the
 * state message whole, as every answer did before.
 */
export function benchPushPull(): void {
  const rows: (string | number)[][] = [['members', 'µs baseline (encode whole)', 'µs/request 1 s apart', 'µs/request burst (same ms)', 'burst ratio to baseline', 'reply bytes']];
  for (const n of [1_000, 10_000]) {
    const core = buildCore(n);
    const entries = core.members().map((m) => ({
      name: m.name, addr: m.addr, aliveIncarnation: m.incarnation, incarnation: m.incarnation, state: MemberState.Alive, ...withRecord(m.record, m.version),
    }));
    const baseline: number[] = [];
    let bytes = 0;
    for (let i = 0; i < 20; i++) {
      const t0 = process.hrtime.bigint();
      bytes = encodePacket([{ type: MessageType.PushPull, join: true, reply: true, members: entries }]).length;
      baseline.push(Number(process.hrtime.bigint() - t0) / 1_000);
    }
    const spaced = perPushPull(core, 20, 100_000, 1_000, 'spaced');
    const burst = perPushPull(core, 200, 200_000, 0, 'burst');
    rows.push([n, fmt(median(baseline)), fmt(spaced), fmt(burst), `${fmt(burst / median(baseline), 3)}x`, bytes]);
  }
  console.log('\n## core: answering push-pull requests');
  console.log(table(rows));
}
