/**
 * Seeds as configured: "host:port" addresses, and DNS names resolved at every join attempt, so
 * a Kubernetes headless service or any DNS-published member list works as a seed list:
 *   dns:NAME[:PORT]       every A/AAAA address of NAME, at PORT (default 7946)
 *   dns+srv:NAME          every SRV target of NAME at its port (targets' A/AAAA looked up)
 * A name that does not resolve contributes nothing this time and is asked again next time.
 * Interfaces may add sources of their own (a bridge lists the members its store knows).
 */
import type { Resolver } from 'node:dns/promises';
import { formatAddress, parseAddress } from '../core/address.js';
import { InvalidOptionError } from '../core/errors.js';

export const DEFAULT_PORT = 7946;
const LOOKUP_TIMEOUT_MS = 2_000;

type Seed = { kind: 'addr'; addr: string } | { kind: 'dns'; name: string; port: number } | { kind: 'srv'; name: string };

/** Checks one configured seed (InvalidOptionError naming `seeds`). */
export function parseSeed(text: string): Seed {
  if (typeof text !== 'string') throw new InvalidOptionError('seeds', 'must be strings: "host:port", "dns:name[:port]" or "dns+srv:name"');
  if (text.startsWith('dns+srv:')) {
    const name = text.slice('dns+srv:'.length);
    if (!/^[A-Za-z0-9_.-]+$/.test(name)) throw new InvalidOptionError('seeds', `${text}: not a DNS name`);
    return { kind: 'srv', name };
  }
  if (text.startsWith('dns:')) {
    const m = /^([A-Za-z0-9_.-]+)(?::(\d{1,5}))?$/.exec(text.slice('dns:'.length));
    const port = m?.[2] === undefined ? DEFAULT_PORT : Number(m[2]);
    if (m === null || port < 1 || port > 65_535) throw new InvalidOptionError('seeds', `${text}: expected dns:name or dns:name:port`);
    return { kind: 'dns', name: m[1] as string, port };
  }
  const a = parseAddress(text, 'seeds');
  if (a.port === 0) throw new InvalidOptionError('seeds', `${text} has port 0`);
  return { kind: 'addr', addr: formatAddress(a.host, a.port) };
}

export class Seeds {
  private readonly seeds: Seed[];
  /** Made at the first name to look up: a member with address seeds never loads the DNS module. */
  private resolver: Promise<Resolver> | undefined;

  /**
   * `servers`: DNS servers for seed names ("127.0.0.1:5353"); default the system's.
   * `discovered`: more sources of seed addresses, asked at every join attempt like names.
   */
  constructor(given: readonly string[], private readonly self: string, private readonly servers?: readonly string[], private readonly discovered: readonly (() => Promise<string[]>)[] = []) {
    this.seeds = given.map(parseSeed);
  }

  private dns(): Promise<Resolver> {
    this.resolver ??= import('node:dns/promises').then(({ Resolver }) => {
      const r = new Resolver({ timeout: LOOKUP_TIMEOUT_MS, tries: 2 });
      if (this.servers !== undefined && this.servers.length > 0) r.setServers([...this.servers]);
      return r;
    });
    return this.resolver;
  }

  get size(): number {
    return this.seeds.length + this.discovered.length;
  }

  /** Whether the only seed is this member itself (the first member of a cluster may list itself). */
  get onlySelf(): boolean {
    return this.discovered.length === 0 && this.seeds.every((s) => s.kind === 'addr' && s.addr === this.self);
  }

  /** Whether every seed comes from a discovery source: none found then means this member is the first. */
  get onlyDiscovered(): boolean {
    return this.seeds.length === 0 && this.discovered.length > 0;
  }

  /** Whether some seeds are names or discovered, to look up again now and then. */
  get named(): boolean {
    return this.discovered.length > 0 || this.seeds.some((s) => s.kind !== 'addr');
  }

  /** Every seed address now, names looked up afresh, without this member's own address. */
  async resolve(): Promise<string[]> {
    const lists = await Promise.all(this.seeds.map(async (s) => {
      if (s.kind === 'addr') return [s.addr];
      if (s.kind === 'dns') return (await this.addresses(s.name)).map((ip) => formatAddress(ip, s.port));
      const records = await (await this.dns()).resolveSrv(s.name).catch(() => []);
      const per = await Promise.all(records.map(async (r) => (await this.addresses(r.name)).map((ip) => formatAddress(ip, r.port))));
      return per.flat();
    }).concat(this.discovered.map((source) => source().catch(() => []))));
    return [...new Set(lists.flat())].filter((a) => a !== this.self);
  }

  private async addresses(name: string): Promise<string[]> {
    if (/^[\d.]+$/.test(name) || name.includes(':')) return [name];
    const resolver = await this.dns();
    const [v4, v6] = await Promise.all([resolver.resolve4(name).catch(() => []), resolver.resolve6(name).catch(() => [])]);
    return [...v4, ...v6];
  }
}
