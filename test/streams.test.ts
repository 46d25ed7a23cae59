/**
 * The TCP stream path under hostile clients (issue 11): slow and idle clients, half-sent frames.
 * A legitimate stream ping, sent as a member's fallback ping is, must still be answered. Every
 * client is on 127.0.0.1, bounded in number and time, and closed afterwards.
 */
import { connect, createServer, type Socket } from 'node:net';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { encodePacket, Grapevine, MessageType, decodePacket } from '../src/index.js';
import { Transport } from '../src/runtime/transport.js';
import { LIMITS } from './arbitraries.js';

let a: Grapevine;
const clients: Socket[] = [];

function hostPort(addr: string): { host: string; port: number } {
  const i = addr.lastIndexOf(':');
  return { host: addr.slice(0, i), port: Number(addr.slice(i + 1)) };
}

function open(): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const s = connect(hostPort(a.address), () => resolve(s));
    s.on('error', () => undefined);
    s.once('error', reject);
    clients.push(s);
  });
}

function frame(bytes: Uint8Array): Buffer {
  const header = Buffer.alloc(4);
  header.writeUInt32BE(bytes.length, 0);
  return Buffer.concat([header, bytes]);
}

/** A stream ping as a member sends it; resolves with the milliseconds until the ack frame, or rejects. */
async function streamPing(): Promise<number> {
  const started = performance.now();
  const s = await open();
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    s.on('data', (c: Buffer) => {
      chunks.push(c);
      const all = Buffer.concat(chunks);
      if (all.length >= 4 && all.length >= 4 + all.readUInt32BE(0)) {
        const reply = decodePacket(all.subarray(4), LIMITS);
        if (reply.ok && reply.messages[0]?.type === MessageType.Ack) resolve(performance.now() - started);
        else reject(new Error('not an ack'));
        s.destroy();
      }
    });
    s.once('close', () => reject(new Error('closed without an answer')));
    s.write(frame(encodePacket([{ type: MessageType.Ping, seq: 7, target: 'a' }])));
  });
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

describe('stream path under hostile clients', () => {
  beforeAll(async () => {
    a = await Grapevine.start({ name: 'a', bind: '127.0.0.1:0', profile: 'local', streamTimeoutMs: 2_000, protocol: { streamBytesMax: 1_048_576 } });
  });

  afterAll(async () => {
    for (const c of clients) c.destroy();
    await a?.close();
  });

  test('80 clients trickling a byte every 300 ms: a member\'s stream ping is still answered', async () => {
    const slow = await Promise.all(Array.from({ length: 80 }, () => open()));
    const trickle = setInterval(() => {
      for (const s of slow) if (!s.destroyed) s.write(Buffer.from([0]));
    }, 300);
    try {
      await sleep(700);
      const ms = await streamPing();
      console.log(`stream ping under 80 trickling clients: ${ms.toFixed(1)} ms, ${a.stats().transport.streamsEvicted} evicted`);
      expect(a.stats().transport.streamsEvicted).toBeGreaterThan(0);
    } finally {
      clearInterval(trickle);
      for (const s of slow) s.destroy();
    }
  });

  test('a stream has a deadline, not an idle timeout: trickling bytes does not keep it open', async () => {
    const s = await open();
    let closedAt = 0;
    s.once('close', () => {
      closedAt = performance.now();
    });
    const started = performance.now();
    const trickle = setInterval(() => s.write(Buffer.from([0])), 100);
    for (let i = 0; i < 60 && closedAt === 0; i++) await sleep(100);
    clearInterval(trickle);
    expect(closedAt).toBeGreaterThan(0);
    expect(closedAt - started).toBeLessThan(4_000); // the 2 s deadline; an idle timeout would never fire
  });

  test('300 idle connections: a member\'s stream ping is still answered', async () => {
    const idle = [];
    for (let i = 0; i < 300; i++) idle.push(await open());
    await sleep(300);
    const ms = await streamPing();
    console.log(`stream ping under 300 idle connections: ${ms.toFixed(1)} ms`);
    for (const s of idle) s.destroy();
  });

  test('16 clients each sending half of a declared maximal frame: buffered bytes stay within the budget', async () => {
    const budget = 2 * (1_048_576 + 40);
    let peak = 0;
    const watch = setInterval(() => {
      peak = Math.max(peak, a.stats().transport.streamBytesBuffered);
    }, 5);
    const half = Buffer.alloc(512 * 1024);
    const header = Buffer.alloc(4);
    header.writeUInt32BE(1_048_576, 0);
    const senders = await Promise.all(Array.from({ length: 16 }, () => open()));
    for (const s of senders) s.write(Buffer.concat([header, half]));
    await sleep(500);
    clearInterval(watch);
    peak = Math.max(peak, a.stats().transport.streamBytesBuffered);
    console.log(`16 half frames of 1 MiB: peak buffered ${peak} bytes, budget ${budget}`);
    expect(peak).toBeLessThanOrEqual(budget + 512 * 1024); // one chunk may land before its eviction
    await streamPing();
    for (const s of senders) s.destroy();
  });

  test('a reply larger than its request asked for is dropped unread: a peer cannot answer a ping with megabytes', async () => {
    // A "peer" that answers any frame with a declared 8 MiB frame and streams it slowly.
    let sentToUs = 0;
    const fake = createServer((socket) => {
      socket.on('error', () => undefined);
      socket.once('data', () => {
        const header = Buffer.alloc(4);
        header.writeUInt32BE(8 * 1024 * 1024, 0);
        socket.write(header);
        const chunk = Buffer.alloc(64 * 1024);
        const pump = setInterval(() => {
          if (socket.destroyed || sentToUs >= 8 * 1024 * 1024) return clearInterval(pump);
          socket.write(chunk);
          sentToUs += chunk.length;
        }, 10);
        socket.once('close', () => clearInterval(pump));
      });
    });
    await new Promise<void>((r) => fake.listen(0, '127.0.0.1', r));
    const port = (fake.address() as { port: number }).port;
    const t = await Transport.open({ host: '127.0.0.1', port: 0, family: 4 }, {
      frameBytesMax: 16 * 1024 * 1024, streamTimeoutMs: 3_000, inboundStreamsMax: 8, inboundPerSourceMax: 8, bufferedBytesMax: 32 * 1024 * 1024, outboundStreamsMax: 8,
    });
    let replies = 0;
    t.attach({ datagram: () => undefined, stream: () => undefined, streamReply: () => void replies++ });
    try {
      const errorsBefore = t.stats.streamErrors;
      t.sendStream(`127.0.0.1:${port}`, encodePacket([{ type: MessageType.Ping, seq: 1, target: 'x' }]), 256);
      for (let i = 0; i < 50 && t.stats.streamErrors === errorsBefore; i++) await sleep(20);
      expect(t.stats.streamErrors).toBeGreaterThan(errorsBefore);
      await sleep(100);
      expect(replies).toBe(0);
      expect(t.stats.streamBytesBuffered).toBe(0);
      expect(sentToUs).toBeLessThan(8 * 1024 * 1024);
    } finally {
      await t.close();
      await new Promise<void>((r) => fake.close(() => r()));
    }
  });
});
