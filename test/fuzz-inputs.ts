/**
 * Hostile inputs built on the wire codec, and a sender that puts them on real sockets: shared
 * by test/fuzz.test.ts (bounded, in npm test) and bench/fuzz.ts (`npm run fuzz`, the long run).
 */
import { createSocket, type Socket as UdpSocket } from 'node:dgram';
import { connect } from 'node:net';
import fc from 'fast-check';
import { Keyring } from '../src/core/seal.js';
import { seededRng } from '../src/core/rng.js';
import { buildPacket, encodeMessage, HEADER_BYTES, type Message } from '../src/core/wire.js';
import { message } from './arbitraries.js';

export interface HostileInput {
  kind: 'valid' | 'mutated' | 'truncated' | 'spliced' | 'random' | 'wrong-key';
  bytes: Uint8Array;
  /** Send as a TCP frame rather than a datagram. */
  stream: boolean;
}

/** An address on this machine's loopback range: members will send to what the fuzzer names, and nothing may leave 127.0.0.0/8. */
const loopback = fc.tuple(fc.integer({ min: 0, max: 255 }), fc.integer({ min: 0, max: 255 }), fc.integer({ min: 1, max: 254 }), fc.integer({ min: 1, max: 65_535 }))
  .map(([x, y, z, port]) => `127.${x}.${y}.${z}:${port}`);

/** Messages that name the cluster's real members and addresses half of the time; every other address is on loopback. */
function aimed(names: readonly string[], addrs: readonly string[]): fc.Arbitrary<Message> {
  return fc.tuple(message, fc.constantFrom(...names), fc.constantFrom(...addrs), fc.boolean(), fc.array(loopback, { minLength: 21, maxLength: 21 }))
    .map(([m, name, addr, aim, local]) => {
      const out = { ...m } as Record<string, unknown>;
      if ('addr' in out) out.addr = aim ? addr : local[0];
      if ('targetAddr' in out) out.targetAddr = aim ? addr : local[0];
      if (Array.isArray(out.members)) out.members = (out.members as { addr: string }[]).map((e, i) => ({ ...e, addr: local[i % local.length] }));
      if (aim && 'node' in out) out.node = name;
      if (aim && 'target' in out) out.target = name;
      return out as unknown as Message;
    });
}

/** Any of the kinds, for a cluster of `names` at `addrs`; `sealed`: valid plaintexts are sealed under a key the cluster does not hold. */
export function hostileInputs(names: readonly string[], addrs: readonly string[], sealed: boolean): fc.Arbitrary<HostileInput> {
  const plain = fc.array(aimed(names, addrs), { minLength: 1, maxLength: 3 }).map((ms) => buildPacket(ms.map(encodeMessage)));
  const foreign = new Keyring([new Uint8Array(32).fill(0xa5)]);
  const rng = seededRng(1);
  const valid = sealed ? plain.map((p) => foreign.seal(p, rng)) : plain;
  const kinds = fc.oneof(
    valid.map((bytes) => ({ kind: 'valid' as const, bytes })),
    fc.tuple(valid, fc.array(fc.tuple(fc.nat(), fc.integer({ min: 0, max: 255 })), { minLength: 1, maxLength: 8 })).map(([p, flips]) => {
      const bytes = Uint8Array.from(p);
      for (const [at, v] of flips) bytes[at % bytes.length] = v;
      return { kind: 'mutated' as const, bytes };
    }),
    fc.tuple(valid, fc.nat()).map(([p, cut]) => ({ kind: 'truncated' as const, bytes: p.subarray(0, cut % p.length) })),
    fc.tuple(plain, plain).map(([p, q]) => {
      const bytes = new Uint8Array(p.length + q.length - HEADER_BYTES);
      bytes.set(p);
      bytes.set(q.subarray(HEADER_BYTES), p.length);
      return { kind: 'spliced' as const, bytes };
    }),
    fc.uint8Array({ maxLength: 3_000 }).map((bytes) => ({ kind: 'random' as const, bytes })),
    plain.map((p) => ({ kind: 'wrong-key' as const, bytes: foreign.seal(p, rng) })),
  );
  return fc.tuple(kinds, fc.integer({ min: 0, max: 9 })).map(([k, r]) => ({ ...k, stream: r === 0 }));
}

function hostPort(addr: string): { host: string; port: number } {
  const i = addr.lastIndexOf(':');
  return { host: addr.slice(0, i), port: Number(addr.slice(i + 1)) };
}

/** Sends inputs from one UDP socket on 127.0.0.1 and counts what comes back to it (key notices apart). */
export class HostileSender {
  readonly replies = { count: 0, bytes: 0, largest: 0 };
  /** Key notices ("keys differ", 4 bytes in clear, src/core/key-notice.ts), from each member's address. */
  readonly notices = new Map<string, number>();
  readonly sent = { datagrams: 0, datagramBytes: 0, frames: 0 };
  private constructor(private readonly socket: UdpSocket) {
    socket.on('message', (msg, rinfo) => {
      if (msg.length === 4 && msg[0] === 0x47 && msg[1] === 0x4b) {
        const from = `${rinfo.address}:${rinfo.port}`;
        this.notices.set(from, (this.notices.get(from) ?? 0) + 1);
        return;
      }
      this.replies.count++;
      this.replies.bytes += msg.length;
      this.replies.largest = Math.max(this.replies.largest, msg.length);
    });
  }

  static async open(): Promise<HostileSender> {
    const socket = createSocket('udp4');
    await new Promise<void>((resolve) => socket.bind(0, '127.0.0.1', resolve));
    return new HostileSender(socket);
  }

  async send(to: string, input: HostileInput): Promise<void> {
    const { host, port } = hostPort(to);
    if (!input.stream) {
      this.sent.datagrams++;
      this.sent.datagramBytes += input.bytes.length;
      await new Promise<void>((resolve) => this.socket.send(input.bytes, port, host, () => resolve()));
      return;
    }
    this.sent.frames++;
    await new Promise<void>((resolve) => {
      const s = connect({ host, port }, () => {
        const header = Buffer.alloc(4);
        header.writeUInt32BE(input.bytes.length, 0);
        s.end(Buffer.concat([header, input.bytes]));
      });
      s.on('error', () => resolve());
      s.on('data', () => undefined);
      s.on('close', () => resolve());
      s.setTimeout(500, () => s.destroy());
    });
  }

  close(): void {
    this.socket.close();
  }
}
