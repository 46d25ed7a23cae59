/** "host:port" strings as used for bind, advertise, seeds and on the wire; IPv6 hosts in brackets. */
import { isIP } from 'node:net';
import { InvalidOptionError } from '../core/errors.js';

export interface Address {
  host: string;
  port: number;
  /** 4 or 6 for IP literals, 0 for a hostname. */
  family: 0 | 4 | 6;
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
    if (isIP(host) !== 6) throw new InvalidOptionError(option, `${JSON.stringify(host)} is not an IPv6 address`);
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
  const family = isIP(host);
  return { host, port: Number(portText), family: family === 4 || family === 6 ? family : 0 };
}

export function formatAddress(host: string, port: number): string {
  return isIP(host) === 6 ? `[${host}]:${port}` : `${host}:${port}`;
}
