/**
 * The virtual network: how long a frame takes, whether it arrives, arrives twice or out of order,
 * and whether a partition cuts it. Every draw comes from the network's own seeded stream.
 */
import { type Rng, randomFloat } from '../src/core/rng.js';

/** One-way latency: a constant, uniform in [minMs, maxMs], or long-tailed (log-normal around medianMs). */
export type Latency = number | { minMs: number; maxMs: number } | { medianMs: number; sigma: number };

export interface NetworkOptions {
  /** One-way delay of datagrams. Default 1 ms. */
  latency?: Latency;
  /** Probability a datagram is lost; stream frames pay for it in TCP's retransmission delays. */
  lossRate?: number;
  /** Probability a datagram is delivered twice. */
  duplicateRate?: number;
  /** Probability a datagram is held back by `reorderDelayMs` extra, arriving after later ones. */
  reorderRate?: number;
  reorderDelayMs?: number;
  /** Datagrams larger than this are dropped, as an IP path with a smaller MTU would. */
  mtuBytes?: number;
  /** Extra delay of a stream frame (connection set-up and transfer) on top of the latency. */
  streamExtraMs?: number;
  /** Probability a stream fails (connection refused or reset): the frame is not delivered. */
  streamFailureRate?: number;
}

export type FrameKind = 'datagram' | 'stream' | 'stream-reply';

/** A frame on the wire between two node addresses. */
export interface Frame {
  from: string;
  to: string;
  bytes: Uint8Array;
  kind: FrameKind;
}

/** Decides whether a frame is dropped (partitions and test-specific rules). */
export type DropRule = (frame: Frame) => boolean;

export class Network {
  private readonly rules = new Set<DropRule>();
  /** Latency of particular links ("from>to"), overriding the default. */
  private readonly links = new Map<string, Latency>();
  readonly options: Required<Omit<NetworkOptions, 'latency'>> & { latency: Latency };

  constructor(private readonly rng: Rng, options: NetworkOptions = {}) {
    this.options = {
      latency: options.latency ?? 1,
      lossRate: options.lossRate ?? 0,
      duplicateRate: options.duplicateRate ?? 0,
      reorderRate: options.reorderRate ?? 0,
      reorderDelayMs: options.reorderDelayMs ?? 20,
      mtuBytes: options.mtuBytes ?? 65_507,
      streamExtraMs: options.streamExtraMs ?? 1,
      streamFailureRate: options.streamFailureRate ?? 0,
    };
  }

  /** Changes the datagram loss rate from now on (faults that come and go). */
  setLossRate(rate: number): void {
    this.options.lossRate = rate;
  }

  /** Gives the link from `from` to `to` its own latency (both directions unless `oneWay`). */
  setLinkLatency(from: string, to: string, latency: Latency, oneWay = false): void {
    this.links.set(`${from}>${to}`, latency);
    if (!oneWay) this.links.set(`${to}>${from}`, latency);
  }

  addDropRule(rule: DropRule): () => void {
    this.rules.add(rule);
    return () => void this.rules.delete(rule);
  }

  /** Cuts frames between the groups; `oneWay` cuts only a → b. Returns the function that heals it. */
  partition(a: readonly string[], b: readonly string[], oneWay = false): () => void {
    const left = new Set(a);
    const right = new Set(b);
    return this.addDropRule(({ from, to }) => (left.has(from) && right.has(to)) || (!oneWay && right.has(from) && left.has(to)));
  }

  /** Delays after which copies of `frame` arrive: none if it is lost. */
  deliveries(frame: Frame): number[] {
    for (const rule of this.rules) if (rule(frame)) return [];
    const o = this.options;
    if (frame.kind !== 'datagram') {
      if (o.streamFailureRate > 0 && randomFloat(this.rng) < o.streamFailureRate) return [];
      return [this.latency(frame) + o.streamExtraMs + this.tcpLossDelay(frame.kind === 'stream')];
    }
    if (frame.bytes.length > o.mtuBytes) return [];
    if (o.lossRate > 0 && randomFloat(this.rng) < o.lossRate) return [];
    const delay = (): number => this.latency(frame) + (o.reorderRate > 0 && randomFloat(this.rng) < o.reorderRate ? o.reorderDelayMs : 0);
    const first = delay();
    return o.duplicateRate > 0 && randomFloat(this.rng) < o.duplicateRate ? [first, delay()] : [first];
  }

  /**
   * What the loss rate costs a stream frame, as TCP pays it: a lost SYN or SYN-ACK is sent again
   * after Linux's 1 s initial retransmission timeout, a lost data segment after its 200 ms
   * minimum, each doubling on every further loss. Real loss makes a stream ping miss a probe's
   * window this way, which the simulator missed while streams were loss-free (bench/fidelity.ts).
   */
  private tcpLossDelay(connects: boolean): number {
    const p = this.options.lossRate;
    if (p <= 0) return 0;
    const retransmits = (firstMs: number): number => {
      let delay = 0;
      for (let rto = firstMs, tries = 0; tries < 6 && randomFloat(this.rng) < p; rto *= 2, tries++) delay += rto;
      return delay;
    };
    return connects ? retransmits(1_000) + retransmits(1_000) + retransmits(200) : retransmits(200);
  }

  private latency(frame: Frame): number {
    const l = this.links.size === 0 ? this.options.latency : this.links.get(`${frame.from}>${frame.to}`) ?? this.options.latency;
    if (typeof l === 'number') return l;
    if ('minMs' in l) return l.minMs + randomFloat(this.rng) * (l.maxMs - l.minMs);
    // Log-normal: Box-Muller normal draw, exponentiated; the tail grows with sigma.
    const u1 = Math.max(randomFloat(this.rng), 1e-12);
    const u2 = randomFloat(this.rng);
    const z = Math.sqrt(-2 * Math.log(u1)) * Math.cos(2 * Math.PI * u2);
    return l.medianMs * Math.exp(l.sigma * z);
  }
}
