/**
 * "host:port" strings, as used for bind, advertise, seeds and on the wire; IPv6 hosts go in
 * brackets ("[::1]:7946"). Pure (no node:net), so the core, the registry and the runtime share
 * one parser and one formatter.
 */
import { InvalidOptionError } from './errors.js';

export interface Address {
  host: string;
  port: number;
  /** 4 or 6 for IP literals, 0 for a host name. */
  family: 0 | 4 | 6;
}

const IPV4_PART = '(?:25[0-5]|2[0-4]\\d|1\\d\\d|[1-9]?\\d)';
const IPV4 = new RegExp(`^${IPV4_PART}(?:\\.${IPV4_PART}){3}$`);
const HEX_GROUP = /^[0-9a-fA-F]{1,4}$/;
/** A zone ("%eth0") as node:net accepts it. */
const ZONE = /^[0-9a-zA-Z.:-]+$/;

/** 4 for an IPv4 literal, 6 for an IPv6 literal (a zone such as "%eth0" allowed), else 0; as node:net's isIP. */
export function ipFamily(host: string): 0 | 4 | 6 {
  if (IPV4.test(host)) return 4;
  return isIPv6(host) ? 6 : 0;
}

function isIPv6(text: string): boolean {
  const zone = text.indexOf('%');
  const ip = zone < 0 ? text : text.slice(0, zone);
  if (zone >= 0 && !ZONE.test(text.slice(zone + 1))) return false;
  const halves = ip.split('::');
  if (halves.length > 2) return false;
  const groups = (half: string): string[] | undefined => (half === '' ? [] : half.split(':'));
  const head = groups(halves[0] as string);
  const tail = halves.length === 2 ? groups(halves[1] as string) : [];
  if (head === undefined || tail === undefined) return false;
  const all = [...head, ...tail];
  // A dotted IPv4 address may stand for the last two groups.
  let slots = all.length;
  const last = all[all.length - 1];
  if (last !== undefined && last.includes('.')) {
    if (!IPV4.test(last)) return false;
    all.pop();
    slots++;
  }
  if (!all.every((g) => HEX_GROUP.test(g))) return false;
  return halves.length === 2 ? slots <= 7 : slots === 8;
}

/** Parses "1.2.3.4:7946", "[::1]:7946" or "host.example:7946"; `option` names the option in errors. */
export function parseAddress(text: string, option: string): Address {
  if (typeof text !== 'string' || text.length === 0 || text.length > 300) {
    throw new InvalidOptionError(option, `expected "host:port", got ${JSON.stringify(text)}`);
  }
  let host: string;
  let portText: string;
  if (text.startsWith('[')) {
    const close = text.indexOf(']');
    if (close < 0 || text[close + 1] !== ':') throw new InvalidOptionError(option, `expected "[ipv6]:port", got ${JSON.stringify(text)}`);
    host = text.slice(1, close);
    portText = text.slice(close + 2);
    if (ipFamily(host) !== 6) throw new InvalidOptionError(option, `${JSON.stringify(host)} is not an IPv6 address`);
  } else {
    const colon = text.lastIndexOf(':');
    if (colon <= 0 || text.indexOf(':') !== colon) {
      throw new InvalidOptionError(option, `expected "host:port" (IPv6 in brackets), got ${JSON.stringify(text)}`);
    }
    host = text.slice(0, colon);
    portText = text.slice(colon + 1);
    if (!/^[A-Za-z0-9.-]+$/.test(host)) throw new InvalidOptionError(option, `${JSON.stringify(host)} is not a host name or IPv4 address`);
  }
  if (!/^\d{1,5}$/.test(portText) || Number(portText) > 65_535) {
    throw new InvalidOptionError(option, `port must be 0-65535, got ${JSON.stringify(portText)}`);
  }
  return { host, port: Number(portText), family: ipFamily(host) };
}

export function formatAddress(host: string, port: number): string {
  return ipFamily(host) === 6 ? `[${host}]:${port}` : `${host}:${port}`;
}

/**
 * The host part of a member address ("10.0.0.1:7946" → "10.0.0.1", "[::1]:7946" → "::1"). It
 * comes from peers, so it never throws: anything else (a simulated member's name) is returned whole.
 */
export function hostOf(addr: string): string {
  if (addr.startsWith('[')) {
    const end = addr.indexOf(']');
    return end > 0 ? addr.slice(1, end) : addr;
  }
  const colon = addr.indexOf(':');
  return colon > 0 && addr.indexOf(':', colon + 1) < 0 ? addr.slice(0, colon) : addr;
}

/**
 * True for an address a peer may name as a member's or a probe target's: an IP literal with a
 * port in 1..65535 that is neither unspecified, multicast nor broadcast. Anything else from the
 * network is refused before a socket ever sees it (a port of 0 made udp.send throw).
 */
export function isUnicastAddress(addr: string): boolean {
  let a: Address;
  try {
    a = parseAddress(addr, 'addr');
  } catch {
    return false;
  }
  if (a.port === 0) return false;
  if (a.family === 4) {
    const first = Number(a.host.slice(0, a.host.indexOf('.')));
    return a.host !== '0.0.0.0' && a.host !== '255.255.255.255' && !(first >= 224 && first <= 239);
  }
  if (a.family === 6) {
    const host = a.host.toLowerCase();
    return !/^(0*:)*:?0*$/.test(host.split('%')[0] as string) && !host.startsWith('ff');
  }
  return false;
}
