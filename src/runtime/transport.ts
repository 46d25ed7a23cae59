/**
 * Sockets: one UDP socket for datagrams and one TCP listener on the same port for streams
 * (push-pull state exchange and the fallback ping). A stream carries one request frame and at
 * most one reply frame, each a 4-byte big-endian length followed by the bytes.
 *
 * Every resource is bounded: frame size, the total time a stream may take (a deadline, not an
 * idle timeout, so a client trickling one byte a second cannot hold a slot), concurrent streams
 * each way and per source address, and the bytes buffered across all streams. When a cap is
 * reached the stream that has made the least progress (fewest bytes per second since it
 * started, among those past a short grace) is dropped rather than the newcomer refused, so slow
 * or idle clients cannot lock out members, even ones behind the same address.
 */
import type { Socket as UdpSocket } from 'node:dgram';
import { connect, type Server, type Socket } from 'node:net';
import { GrapevineError } from '../core/errors.js';
import { bindPair, type PairBindError } from './bind.js';
import { type Address, formatAddress, parseAddress } from '../core/address.js';

export interface TransportLimits {
  /** Largest stream frame accepted or sent. */
  frameBytesMax: number;
  /** Time a stream may take from connect to its last byte. */
  streamTimeoutMs: number;
  /** Concurrent inbound streams; at the cap the slowest one gives way. */
  inboundStreamsMax: number;
  /** Concurrent inbound streams from one IP address; at the cap its slowest one gives way. */
  inboundPerSourceMax: number;
  /** Bytes buffered across all streams' unfinished frames; over it the slowest stream is dropped. */
  bufferedBytesMax: number;
  /** Concurrent outbound streams; more are dropped (the protocol retries on its own schedule). */
  outboundStreamsMax: number;
}

export interface TransportHandlers {
  datagram(from: string, bytes: Uint8Array): void;
  /** An inbound stream's request frame; returns the reply frame, if any. */
  stream(from: string, bytes: Uint8Array): Uint8Array | undefined;
  /** The reply to a stream we opened. */
  streamReply(from: string, bytes: Uint8Array): void;
}

/** Counters at the transport, the figures a bandwidth comparison needs. */
export interface TransportStats {
  udpPacketsIn: number;
  udpBytesIn: number;
  udpPacketsOut: number;
  udpBytesOut: number;
  tcpBytesIn: number;
  tcpBytesOut: number;
  streamsIn: number;
  streamsOut: number;
  streamsRefused: number;
  /** Streams dropped to make room: the slowest when a cap was reached. */
  streamsEvicted: number;
  /** Bytes held now for unfinished frames, across all streams (a gauge). */
  streamBytesBuffered: number;
  streamErrors: number;
  sendErrors: number;
}

/** Binding the sockets failed (address in use, not local, no permission). `option` is "bind". */
export class BindError extends GrapevineError {
  /** The option naming the address: "bind", or an interface's ("http.bind", "dns.bind"). */
  readonly option: string;
  constructor(message: string, cause: unknown, option = 'bind') {
    super('grapevine.bind-failed', message);
    this.cause = cause;
    this.option = option;
  }
}

const IGNORE_INPUT: TransportHandlers = { datagram: () => undefined, stream: () => undefined, streamReply: () => undefined };

const LENGTH_BYTES = 4;
/** A stream this young is never evicted: it has had no chance to show its pace. */
const EVICTION_GRACE_MS = 200;

interface Stream {
  socket: Socket;
  inbound: boolean;
  /** The peer's IP address. */
  source: string;
  startedMs: number;
  received: number;
  /** Bytes of an unfinished frame held for it. */
  buffered: number;
}
/** Parsed destination addresses kept; the table is cleared when it grows past this. */
const ADDRESS_CACHE_MAX = 10_000;
/** Tries to find a port free for both UDP and TCP when the caller asked for port 0. */

export class Transport {
  readonly stats: TransportStats = {
    udpPacketsIn: 0, udpBytesIn: 0, udpPacketsOut: 0, udpBytesOut: 0, tcpBytesIn: 0, tcpBytesOut: 0,
    streamsIn: 0, streamsOut: 0, streamsRefused: 0, streamsEvicted: 0, streamBytesBuffered: 0, streamErrors: 0, sendErrors: 0,
  };
  private readonly streams = new Set<Stream>();
  private inbound = 0;
  private outbound = 0;
  private readonly addresses = new Map<string, Address>();
  private closed = false;
  /** Until a driver attaches, input is dropped: there is no core yet to hand it to. */
  private handlers: TransportHandlers = IGNORE_INPUT;

  private constructor(
    private readonly udp: UdpSocket,
    private readonly tcp: Server,
    /** The address actually bound, port resolved. */
    readonly bound: Address,
    private readonly limits: TransportLimits,
  ) {
    udp.on('message', (msg, rinfo) => {
      this.stats.udpPacketsIn++;
      this.stats.udpBytesIn += msg.length;
      this.handlers.datagram(formatAddress(rinfo.address, rinfo.port), msg);
    });
    udp.on('error', () => this.stats.sendErrors++);
    tcp.on('connection', (socket) => this.acceptStream(socket));
    tcp.on('error', () => this.stats.streamErrors++);
  }

  /** Binds UDP and TCP on `bind` (port 0 picks one free for both); input flows once `attach` names where to. */
  static async open(bind: Address, limits: TransportLimits): Promise<Transport> {
    try {
      const { udp, tcp, port } = await bindPair(bind.host, bind.port, bind.family === 6 ? 6 : 4);
      return new Transport(udp, tcp, { ...bind, port }, limits);
    } catch (e) {
      const { stage, cause } = e as PairBindError;
      throw new BindError(`cannot bind ${stage === 'udp' ? 'UDP' : 'TCP'} ${formatAddress(bind.host, bind.port)}: ${(cause as Error).message}`, cause);
    }
  }

  /** Hands every later datagram and stream to `handlers`. */
  attach(handlers: TransportHandlers): void {
    this.handlers = handlers;
  }

  sendDatagram(addr: string, bytes: Uint8Array): void {
    if (this.closed) return;
    const to = this.resolve(addr);
    if (to === undefined) {
      this.stats.sendErrors++;
      return;
    }
    this.stats.udpPacketsOut++;
    this.stats.udpBytesOut += bytes.length;
    try {
      this.udp.send(bytes, to.port, to.host, (err) => {
        if (err) this.stats.sendErrors++;
      });
    } catch {
      // Node throws synchronously for some destinations (port 0 among them): nothing from the network may escape.
      this.stats.sendErrors++;
    }
  }

  /**
   * Opens a stream to `addr`, sends one frame and hands any reply frame to `streamReply`. A reply
   * larger than `replyBytesMax` (what the request asked for) ends the stream unread.
   */
  sendStream(addr: string, bytes: Uint8Array, replyBytesMax = this.limits.frameBytesMax): void {
    const to = this.resolve(addr);
    if (this.closed || to === undefined || this.outbound >= this.limits.outboundStreamsMax || bytes.length > this.limits.frameBytesMax) {
      this.stats.streamsRefused++;
      return;
    }
    let socket: Socket;
    try {
      socket = connect({ host: to.host, port: to.port });
    } catch {
      this.stats.streamErrors++;
      return;
    }
    this.stats.streamsOut++;
    const stream = this.track(socket, false, to.host);
    socket.once('connect', () => this.writeFrame(socket, bytes));
    this.readFrame(stream, Math.min(replyBytesMax, this.limits.frameBytesMax), (reply) => {
      socket.end();
      this.handlers.streamReply(addr, reply);
    });
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    for (const s of this.streams) s.socket.destroy();
    await Promise.all([
      new Promise<void>((resolve) => this.udp.close(() => resolve())),
      new Promise<void>((resolve) => this.tcp.close(() => resolve())),
    ]);
  }

  private acceptStream(socket: Socket): void {
    const source = socket.remoteAddress ?? '?';
    if (this.closed || !this.makeRoom(source)) {
      this.stats.streamsRefused++;
      socket.destroy();
      return;
    }
    this.stats.streamsIn++;
    const stream = this.track(socket, true, source);
    const from = formatAddress(source, socket.remotePort ?? 0);
    this.readFrame(stream, this.limits.frameBytesMax, (request) => {
      const reply = this.handlers.stream(from, request);
      if (reply !== undefined) this.writeFrame(socket, reply);
      socket.end();
    });
  }

  /** Frees a slot for a new inbound stream from `source` if a cap is reached; false if none can give way. */
  private makeRoom(source: string): boolean {
    let fromSource = 0;
    for (const s of this.streams) if (s.inbound && s.source === source) fromSource++;
    if (fromSource >= this.limits.inboundPerSourceMax && !this.evictSlowest((s) => s.inbound && s.source === source)) return false;
    if (this.inbound >= this.limits.inboundStreamsMax && !this.evictSlowest((s) => s.inbound)) return false;
    return true;
  }

  /** Drops the stream with the fewest bytes per second among those `eligible` and past `graceMs`; false if there is none. */
  private evictSlowest(eligible: (s: Stream) => boolean, graceMs = EVICTION_GRACE_MS): boolean {
    const now = performance.now();
    let slowest: Stream | undefined;
    let slowestRate = Number.POSITIVE_INFINITY;
    for (const s of this.streams) {
      const ageMs = now - s.startedMs;
      if (ageMs < graceMs || !eligible(s)) continue;
      const rate = s.received / Math.max(ageMs, 1);
      if (rate < slowestRate) {
        slowest = s;
        slowestRate = rate;
      }
    }
    if (slowest === undefined) return false;
    this.stats.streamsEvicted++;
    this.release(slowest);
    slowest.socket.destroy();
    return true;
  }

  /** Registers a stream for close(), gives it a deadline and counts its errors. */
  private track(socket: Socket, inbound: boolean, source: string): Stream {
    const stream: Stream = { socket, inbound, source, startedMs: performance.now(), received: 0, buffered: 0 };
    this.streams.add(stream);
    if (inbound) this.inbound++;
    else this.outbound++;
    // A deadline for the whole stream, not an idle timeout: trickling bytes does not extend it.
    const deadline = setTimeout(() => {
      this.stats.streamErrors++;
      socket.destroy();
    }, this.limits.streamTimeoutMs);
    deadline.unref();
    socket.on('error', () => this.stats.streamErrors++);
    socket.once('close', () => {
      clearTimeout(deadline);
      this.release(stream);
    });
    return stream;
  }

  /** Forgets a stream's slot and buffered bytes (once). */
  private release(stream: Stream): void {
    if (!this.streams.delete(stream)) return;
    if (stream.inbound) this.inbound--;
    else this.outbound--;
    this.stats.streamBytesBuffered -= stream.buffered;
    stream.buffered = 0;
  }

  private writeFrame(socket: Socket, bytes: Uint8Array): void {
    const header = Buffer.allocUnsafe(LENGTH_BYTES);
    header.writeUInt32BE(bytes.length, 0);
    socket.write(header);
    socket.write(bytes);
    this.stats.tcpBytesOut += LENGTH_BYTES + bytes.length;
  }

  /** Reads one length-prefixed frame; one declared over `bytesMax`, or truncated, ends the stream. */
  private readFrame(stream: Stream, bytesMax: number, onFrame: (bytes: Uint8Array) => void): void {
    const socket = stream.socket;
    const chunks: Buffer[] = [];
    let expected = -1;
    const onData = (chunk: Buffer): void => {
      this.stats.tcpBytesIn += chunk.length;
      chunks.push(chunk);
      stream.received += chunk.length;
      stream.buffered += chunk.length;
      this.stats.streamBytesBuffered += chunk.length;
      if (expected < 0 && stream.received >= LENGTH_BYTES) {
        expected = Buffer.concat(chunks).readUInt32BE(0);
        if (expected > bytesMax) {
          this.stats.streamErrors++;
          this.release(stream);
          socket.destroy();
          return;
        }
      }
      if (expected >= 0 && stream.received >= LENGTH_BYTES + expected) {
        socket.off('data', onData);
        this.stats.streamBytesBuffered -= stream.buffered;
        stream.buffered = 0;
        const all = Buffer.concat(chunks);
        onFrame(all.subarray(LENGTH_BYTES, LENGTH_BYTES + expected));
        return;
      }
      // Over the budget: the slowest stream holding bytes goes (this one, if it is the slowest),
      // young or not: memory is the one resource that cannot wait for a grace period.
      let evicting = true;
      while (evicting && this.stats.streamBytesBuffered > this.limits.bufferedBytesMax) evicting = this.evictSlowest((s) => s.buffered > 0, 0);
    };
    socket.on('data', onData);
  }

  private resolve(addr: string): Address | undefined {
    let a = this.addresses.get(addr);
    if (a !== undefined) return a;
    try {
      a = parseAddress(addr, 'addr');
    } catch {
      return undefined;
    }
    if (a.port === 0) return undefined;
    if (this.addresses.size >= ADDRESS_CACHE_MAX) this.addresses.clear();
    this.addresses.set(addr, a);
    return a;
  }
}
