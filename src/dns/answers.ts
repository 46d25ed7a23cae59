/**
 * DNS answers from the member's catalog, with Consul's naming under a configurable domain:
 *   <service>.service.<domain>            A/AAAA: healthy instances' distinct addresses; SRV
 *   <tag>.<service>.service.<domain>      the same, instances with that tag
 *   _<service>._<tag|tcp>.service.<domain>  RFC 2782 form of the two above
 *   <node>.node.<domain>                  A/AAAA of a live member; TXT key=value of its metadata
 *   <hex-ip>.addr.<domain>                A/AAAA: the SRV target of an instance whose address is not its node's
 * Healthy means not critical; a suspect member's instances are used only when no other is left.
 * ANY is answered minimally, with the A and AAAA records of the name (RFC 8482 allows it).
 * Answers are read from the catalog when the query arrives, so DNS never lags lookup().
 */
import type { Answer, Question, RecordType } from 'dns-packet';
import type { Instance, Member } from '../registry/index.js';
import { type Grapevine, hostOf, ipFamily } from '../runtime/index.js';

export type Rcode = 'NOERROR' | 'FORMERR' | 'NXDOMAIN' | 'REFUSED' | 'NOTIMP';

export interface Reply {
  rcode: Rcode;
  answers: Answer[];
  additionals: Answer[];
  /** An SOA for the authority section (NXDOMAIN and empty answers). */
  soa: boolean;
}

export interface AnswerOptions {
  domain: string;
  ttlS: number;
  /** Records of each kind in a UDP answer (Consul's udp_answer_limit); Infinity on TCP. */
  answerLimit: number;
}

type Family = 4 | 6;

/** An IP as the hex label Consul uses for <hex>.addr names (8 digits for IPv4, 32 for IPv6). */
export function ipToHex(ip: string): string {
  if (ipFamily(ip) === 4) return ip.split('.').map((o) => Number(o).toString(16).padStart(2, '0')).join('');
  const [head = '', tail = ''] = ip.split('::');
  const h = head === '' ? [] : head.split(':');
  const t = tail === '' ? [] : tail.split(':');
  const groups = ip.includes('::') ? [...h, ...Array(8 - h.length - t.length).fill('0'), ...t] : h;
  return groups.map((g) => g.padStart(4, '0')).join('').toLowerCase();
}

function hexToIp(hex: string): string | undefined {
  if (/^[0-9a-f]{8}$/.test(hex)) return (hex.match(/../g) as string[]).map((b) => parseInt(b, 16)).join('.');
  if (/^[0-9a-f]{32}$/.test(hex)) return (hex.match(/.{4}/g) as string[]).map((g) => g.replace(/^0+(?=.)/, '')).join(':');
  return undefined;
}

function shuffled<T>(xs: readonly T[]): T[] {
  const out = xs.slice();
  for (let i = out.length - 1; i > 0; i--) {
    const j = Math.floor(Math.random() * (i + 1));
    [out[i], out[j]] = [out[j] as T, out[i] as T];
  }
  return out;
}

/** Maps lower-cased names to the catalog's and the member table's, rebuilt when either changes. */
export class Names {
  private services = new Map<string, string>();
  private servicesAt = -1;
  private members = new Map<string, Member>();
  private membersAt = -1;

  constructor(private readonly gv: Grapevine) {}

  service(lower: string): string | undefined {
    const at = this.gv.catalog.index;
    if (at !== this.servicesAt) {
      this.services = new Map(this.gv.services().map((s) => [s.toLowerCase(), s]));
      this.servicesAt = at;
    }
    return this.services.get(lower);
  }

  /** A live member by lower-cased name; `memberChanges` moves whenever the member table does. */
  member(lower: string, memberChanges: number): Member | undefined {
    if (memberChanges !== this.membersAt) {
      this.members = new Map(this.gv.members().filter((m) => m.state === 'alive' || m.state === 'suspect').map((m) => [m.name.toLowerCase(), m]));
      this.membersAt = memberChanges;
    }
    return this.members.get(lower);
  }
}

/** What a question's name refers to, or why it does not. */
type Target =
  | { kind: 'service'; service: string; tag: string | undefined }
  | { kind: 'node'; member: Member }
  | { kind: 'addr'; ip: string }
  | { kind: 'none'; rcode: 'NXDOMAIN' | 'REFUSED' };

function parse(name: string, domain: string, names: Names, memberChanges: number): Target {
  const lower = name.toLowerCase().replace(/\.$/, '');
  if (lower !== domain && !lower.endsWith(`.${domain}`)) return { kind: 'none', rcode: 'REFUSED' };
  const labels = lower === domain ? [] : lower.slice(0, -domain.length - 1).split('.');
  const kind = labels.at(-1);
  const rest = labels.slice(0, -1);
  if (kind === 'service' && rest.length >= 1 && rest.length <= 2) {
    let [first = '', second] = rest;
    let tag: string | undefined;
    if (first.startsWith('_') && second?.startsWith('_') === true) {
      // RFC 2782: _service._tag (or _tcp/_udp for "any tag").
      tag = second === '_tcp' || second === '_udp' ? undefined : second.slice(1);
      first = first.slice(1);
    } else if (second !== undefined) {
      [tag, first] = [first, second];
    }
    const service = names.service(first);
    return service === undefined ? { kind: 'none', rcode: 'NXDOMAIN' } : { kind: 'service', service, tag };
  }
  if (kind === 'node' && rest.length >= 1) {
    const member = names.member(rest.join('.'), memberChanges);
    return member === undefined ? { kind: 'none', rcode: 'NXDOMAIN' } : { kind: 'node', member };
  }
  if (kind === 'addr' && rest.length === 1) {
    const ip = hexToIp(rest[0] as string);
    return ip === undefined ? { kind: 'none', rcode: 'NXDOMAIN' } : { kind: 'addr', ip };
  }
  return { kind: 'none', rcode: 'NXDOMAIN' };
}

/** Healthy instances, suspect members' ones only when nothing else is left. */
function usable(instances: readonly Instance[]): Instance[] {
  const healthy = instances.filter((i) => i.health !== 'critical');
  const sure = healthy.filter((i) => !i.suspect);
  return sure.length > 0 ? sure : healthy;
}

function addressRecord(name: string, ip: string, ttl: number): Answer | undefined {
  const family = ipFamily(ip);
  if (family === 0) return undefined;
  return { name, type: family === 4 ? 'A' : 'AAAA', ttl, class: 'IN', data: ip } as Answer;
}

function wants(type: RecordType | string, family: Family): boolean {
  return type === 'ANY' || type === (family === 4 ? 'A' : 'AAAA');
}

export function answer(q: Question, gv: Grapevine, names: Names, memberChanges: number, o: AnswerOptions): Reply {
  const target = parse(q.name, o.domain, names, memberChanges);
  const reply: Reply = { rcode: 'NOERROR', answers: [], additionals: [], soa: false };
  const ttl = o.ttlS;
  const type = q.type as string;
  if (target.kind === 'none') return { ...reply, rcode: target.rcode, soa: target.rcode === 'NXDOMAIN' };
  if (target.kind === 'addr') {
    const rec = addressRecord(q.name, target.ip, ttl);
    if (rec !== undefined && wants(type, ipFamily(target.ip) as Family)) reply.answers.push(rec);
  } else if (target.kind === 'node') {
    const ip = hostOf(target.member.addr);
    const rec = addressRecord(q.name, ip, ttl);
    if (rec !== undefined && wants(type, ipFamily(ip) as Family)) reply.answers.push(rec);
    // One TXT record per metadata entry, as Consul answers them.
    if (type === 'TXT') for (const [k, v] of Object.entries(target.member.meta)) reply.answers.push({ name: q.name, type: 'TXT', ttl, class: 'IN', data: `${k}=${v}` } as Answer);
  } else {
    const all = usable(gv.lookup(target.service, target.tag === undefined ? undefined : { tags: [target.tag] }));
    if (type === 'SRV') {
      const seen = new Set<string>();
      for (const i of shuffled(all).slice(0, o.answerLimit)) {
        const nodeAddr = names.member(i.node.toLowerCase(), memberChanges)?.addr;
        const family = ipFamily(i.address);
        const onNode = nodeAddr !== undefined && hostOf(nodeAddr) === i.address;
        const srvTarget = family === 0 ? i.address : onNode ? `${i.node}.node.${o.domain}` : `${ipToHex(i.address)}.addr.${o.domain}`;
        reply.answers.push({ name: q.name, type: 'SRV', ttl, class: 'IN', data: { priority: 1, weight: Math.min(65_535, Math.max(0, Math.round(i.weight))), port: i.port, target: srvTarget } } as Answer);
        const extra = family === 0 ? undefined : addressRecord(srvTarget, i.address, ttl);
        if (extra !== undefined && !seen.has(srvTarget)) {
          seen.add(srvTarget);
          reply.additionals.push(extra);
        }
      }
    } else {
      for (const family of [4, 6] as const) {
        if (!wants(type, family)) continue;
        const ips = [...new Set(all.map((i) => i.address).filter((a) => ipFamily(a) === family))];
        for (const ip of shuffled(ips).slice(0, o.answerLimit)) reply.answers.push(addressRecord(q.name, ip, ttl) as Answer);
      }
    }
  }
  if (reply.answers.length === 0) reply.soa = true;
  return reply;
}
