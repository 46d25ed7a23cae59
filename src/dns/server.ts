/**
 * The DNS server: UDP and TCP on one port, answering from the member's catalog (answers.ts),
 * authoritative for its domain and nothing else (no recursion: RA=0, other names REFUSED).
 *
 * Bounded: a query that does not decode gets FORMERR (or is dropped when not even its header
 * is there), never a throw; more than one question is FORMERR; a UDP answer fits the client's
 * buffer (512 bytes without EDNS0, at most 4,096 with it) and at most AMPLIFICATION_MAX times
 * the query, else it is truncated (TC) and the client asks again over TCP, where a handshake
 * proves its address; each source address has a query-rate budget; TCP connections are capped
 * and idle ones closed.
 */
import type { RemoteInfo, Socket as UdpSocket } from 'node:dgram';
import type { Server, Socket } from 'node:net';
import dnsPacket, { type Answer, type DecodedPacket, type OptAnswer, type Packet } from 'dns-packet';
import {
  BindError, bindPair, type DnsOptions, type Extension, type ExtensionContext, type Grapevine, InvalidOptionError, type Logger,
} from '../runtime/index.js';
import { answer, Names, type Rcode } from './answers.js';

const DEFAULT_BIND = '127.0.0.1:8600';
const UDP_PLAIN_MAX = 512;
const UDP_EDNS_MAX = 4_096;
/** A UDP answer is at most this many times its query (a bound on reflection). */
const AMPLIFICATION_MAX = 16;
const TCP_CONNECTIONS_MAX = 256;
const TCP_IDLE_MS = 10_000;
/** Source addresses whose query budget is tracked; the oldest is forgotten past this. */
const SOURCES_MAX = 4_096;
const RCODES: Record<Rcode, number> = { NOERROR: 0, FORMERR: 1, NXDOMAIN: 3, NOTIMP: 4, REFUSED: 5 };
const OPCODE_QUERY = 0;

interface Valid {
  host: string;
  port: number;
  domain: string;
  ttlS: number;
  udpAnswerLimit: number;
  rateLimit: number;
}

function validate(value: unknown): Valid {
  const o: DnsOptions = typeof value === 'string' ? { bind: value } : value === true ? {} : (value as DnsOptions);
  if (o === null || typeof o !== 'object') throw new InvalidOptionError('dns', 'must be "host:port" or { bind, domain, ttlS, udpAnswerLimit }');
  const bind = o.bind ?? DEFAULT_BIND;
  const m = typeof bind === 'string' ? /^(?:\[([0-9a-fA-F:.]+)\]|([^:\s]+)):(\d{1,5})$/.exec(bind) : null;
  if (m === null) throw new InvalidOptionError('dns.bind', `must be "host:port", got ${JSON.stringify(bind)}`);
  const domain = (o.domain ?? 'grapevine').toLowerCase().replace(/^\.|\.$/g, '');
  if (!/^[a-z0-9]([a-z0-9-]*[a-z0-9])?(\.[a-z0-9]([a-z0-9-]*[a-z0-9])?)*$/.test(domain)) throw new InvalidOptionError('dns.domain', `not a domain name: ${JSON.stringify(o.domain)}`);
  const int = (v: number | undefined, name: string, fallback: number, min: number): number => {
    if (v === undefined) return fallback;
    if (!Number.isInteger(v) || v < min) throw new InvalidOptionError(`dns.${name}`, `must be an integer of at least ${min}`);
    return v;
  };
  return {
    host: (m[1] ?? m[2]) as string, port: Number(m[3]), domain,
    ttlS: int(o.ttlS, 'ttlS', 0, 0), udpAnswerLimit: int(o.udpAnswerLimit, 'udpAnswerLimit', 3, 1), rateLimit: int(o.rateLimit, 'rateLimit', 1_000, 1),
  };
}

export class DnsServer implements Extension {
  address = '';
  /** Queries answered, and dropped (rate limit, undecodable), for metrics and tests. */
  readonly stats = { queries: 0, dropped: 0, truncated: 0 };
  private readonly names: Names;
  private memberChanges = 0;
  private readonly budgets = new Map<string, { tokens: number; atMs: number }>();
  private readonly connections = new Set<Socket>();
  private udp: UdpSocket | undefined;
  private tcp: Server | undefined;
  private readonly onMember = (): void => {
    this.memberChanges++;
  };

  constructor(
    private readonly gv: Grapevine,
    private readonly o: Valid,
    private readonly log: Logger,
  ) {
    this.names = new Names(gv);
    gv.on('member', this.onMember);
  }

  async listen(): Promise<void> {
    const six = this.o.host.includes(':');
    let pair: Awaited<ReturnType<typeof bindPair>>;
    try {
      pair = await bindPair(this.o.host, this.o.port, six ? 6 : 4);
    } catch (e) {
      const cause = (e as { cause?: unknown }).cause ?? e;
      throw new BindError(`cannot serve DNS on ${this.o.host}:${this.o.port}: ${(cause as Error).message}`, cause, 'dns.bind');
    }
    const { udp, tcp, port } = pair;
    udp.on('message', (msg: Buffer, rinfo: RemoteInfo) => this.onDatagram(msg, rinfo));
    udp.on('error', () => undefined);
    tcp.on('connection', (s: Socket) => this.onConnection(s));
    tcp.maxConnections = TCP_CONNECTIONS_MAX;
    tcp.on('error', () => undefined);
    this.udp = udp;
    this.tcp = tcp;
    this.address = six ? `[${this.o.host}]:${port}` : `${this.o.host}:${port}`;
    this.log.info(`DNS on ${this.address} (UDP and TCP) for .${this.o.domain}`, { dns: this.address, domain: this.o.domain });
  }

  async close(): Promise<void> {
    this.gv.off('member', this.onMember);
    for (const s of this.connections) s.destroy();
    await Promise.all([
      new Promise<void>((r) => (this.udp === undefined ? r() : this.udp.close(() => r()))),
      new Promise<void>((r) => (this.tcp === undefined ? r() : this.tcp.close(() => r()))),
    ]);
  }

  // ---------------------------------------------------------------- transports

  private onDatagram(msg: Buffer, rinfo: RemoteInfo): void {
    if (!this.allowed(rinfo.address)) return;
    const response = this.respond(msg, true);
    if (response !== undefined) this.udp?.send(response, rinfo.port, rinfo.address, () => undefined);
  }

  private onConnection(socket: Socket): void {
    this.connections.add(socket);
    socket.setTimeout(TCP_IDLE_MS, () => socket.destroy());
    socket.on('error', () => undefined);
    socket.once('close', () => this.connections.delete(socket));
    let buffered: Buffer = Buffer.alloc(0);
    socket.on('data', (chunk: Buffer) => {
      buffered = buffered.length === 0 ? chunk : Buffer.concat([buffered, chunk]);
      // Each message is a 2-byte length and the message (RFC 1035 4.2.2); several may come at once.
      while (buffered.length >= 2) {
        const size = buffered.readUInt16BE(0);
        if (buffered.length < 2 + size) return;
        const query = buffered.subarray(2, 2 + size);
        buffered = buffered.subarray(2 + size);
        if (!this.allowed(socket.remoteAddress ?? '?')) continue;
        const response = this.respond(query, false);
        if (response === undefined) continue;
        const head = Buffer.alloc(2);
        head.writeUInt16BE(response.length, 0);
        socket.write(Buffer.concat([head, response]));
      }
    });
  }

  /** The source's query budget: `rateLimit` a second, as much again in a burst. */
  private allowed(source: string): boolean {
    const now = performance.now();
    const rate = this.o.rateLimit;
    let b = this.budgets.get(source);
    if (b === undefined) {
      if (this.budgets.size >= SOURCES_MAX) this.budgets.delete(this.budgets.keys().next().value as string);
      b = { tokens: rate, atMs: now };
      this.budgets.set(source, b);
    }
    b.tokens = Math.min(rate, b.tokens + ((now - b.atMs) * rate) / 1_000);
    b.atMs = now;
    if (b.tokens < 1) {
      this.stats.dropped++;
      return false;
    }
    b.tokens -= 1;
    return true;
  }

  // ---------------------------------------------------------------- messages

  /** The encoded response to `msg`, or undefined to stay silent. Never throws. */
  private respond(msg: Buffer, udp: boolean): Buffer | undefined {
    try {
      return this.answerTo(msg, udp);
    } catch {
      // A question that decodes but cannot be echoed back (a name dns-packet will not encode).
      this.stats.dropped++;
      return undefined;
    }
  }

  private answerTo(msg: Buffer, udp: boolean): Buffer | undefined {
    let query: DecodedPacket;
    try {
      query = dnsPacket.decode(msg);
    } catch {
      // Answer FORMERR only to something shaped like a query: an ID and the QR bit clear.
      if (msg.length < 12 || (msg[2] as number) & 0x80) {
        this.stats.dropped++;
        return undefined;
      }
      return this.encode({ id: msg.readUInt16BE(0), type: 'response', flags: RCODES.FORMERR, questions: [] }, msg.length, udp, UDP_PLAIN_MAX);
    }
    if (query.type === 'response') {
      this.stats.dropped++;
      return undefined;
    }
    this.stats.queries++;
    const opt = query.additionals?.find((a): a is OptAnswer => a.type === 'OPT');
    const limit = opt === undefined ? UDP_PLAIN_MAX : Math.min(UDP_EDNS_MAX, Math.max(UDP_PLAIN_MAX, opt.udpPayloadSize));
    const flags = dnsPacket.AUTHORITATIVE_ANSWER | ((query.flags ?? 0) & dnsPacket.RECURSION_DESIRED);
    const base: Packet = {
      id: query.id ?? 0, type: 'response', flags, questions: query.questions ?? [],
      ...(opt !== undefined ? { additionals: [{ type: 'OPT', name: '.', udpPayloadSize: UDP_EDNS_MAX, extendedRcode: 0, ednsVersion: 0, flags: 0, flag_do: false, options: [] } as unknown as Answer] } : {}),
    };
    const opcode = ((query.flags ?? 0) >> 11) & 0xf;
    if (opcode !== OPCODE_QUERY) return this.encode({ ...base, flags: flags | RCODES.NOTIMP }, msg.length, udp, limit);
    const question = query.questions?.[0];
    if (question === undefined || (query.questions?.length ?? 0) !== 1) return this.encode({ ...base, flags: flags | RCODES.FORMERR }, msg.length, udp, limit);
    const reply = answer(question, this.gv, this.names, this.memberChanges, {
      domain: this.o.domain, ttlS: this.o.ttlS, answerLimit: udp ? this.o.udpAnswerLimit : Number.POSITIVE_INFINITY,
    });
    return this.encode({
      ...base,
      flags: flags | RCODES[reply.rcode],
      answers: reply.answers,
      additionals: [...reply.additionals, ...(base.additionals ?? [])],
      authorities: reply.soa ? [this.soa()] : [],
    }, msg.length, udp, limit);
  }

  private soa(): Answer {
    const d = this.o.domain;
    return {
      name: d, type: 'SOA', ttl: this.o.ttlS, class: 'IN',
      data: { mname: `ns.${d}`, rname: `hostmaster.${d}`, serial: (this.gv.catalog.index + this.memberChanges) % 0x1_0000_0000, refresh: 3_600, retry: 600, expire: 86_400, minimum: this.o.ttlS },
    } as Answer;
  }

  /** Encodes `p`; over UDP, trims it to the client's buffer and the amplification bound, setting TC if anything was left out. */
  private encode(p: Packet, queryBytes: number, udp: boolean, limit: number): Buffer {
    let out = dnsPacket.encode(p);
    if (!udp) return out;
    const max = Math.min(limit, Math.max(queryBytes * AMPLIFICATION_MAX, 64));
    if (out.length <= max) return out;
    this.stats.truncated++;
    const opt = (p.additionals ?? []).filter((a) => a.type === 'OPT');
    const answers = [...(p.answers ?? [])];
    const trimmed: Packet = { ...p, flags: (p.flags ?? 0) | dnsPacket.TRUNCATED_RESPONSE, additionals: opt, authorities: [], answers };
    out = dnsPacket.encode(trimmed);
    while (out.length > max && answers.length > 0) {
      answers.pop();
      out = dnsPacket.encode(trimmed);
    }
    if (out.length > max) out = dnsPacket.encode({ ...trimmed, additionals: [], questions: [] });
    return out;
  }
}

/** The ExtensionStarter for start() option `dns`. */
export const serveDns = Object.assign(startDns, { check: (value: unknown): void => void validate(value) });

async function startDns(gv: Grapevine, value: unknown, context: ExtensionContext): Promise<DnsServer> {
  const server = new DnsServer(gv, validate(value), context.logger);
  await server.listen();
  return server;
}
