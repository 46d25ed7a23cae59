/** The core's pure address parser: the same verdicts as node:net's isIP, and typed errors. */
import { test as propTest } from '@fast-check/vitest';
import fc from 'fast-check';
import { isIP } from 'node:net';
import { describe, expect, test } from 'vitest';
import { formatAddress, ipFamily, isUnicastAddress, parseAddress } from '../src/core/address.js';

const ipLike = fc.string({ unit: fc.constantFrom('0', '1', '9', 'f', 'F', 'g', ':', '.', '%', '2', '5', 'a'), maxLength: 24 });
const v6 = fc.ipV6().chain((ip) => fc.constantFrom(ip, `${ip}%eth0`, ip.toUpperCase()));

describe('ipFamily agrees with node:net isIP', () => {
  propTest.prop([fc.oneof(ipLike, fc.ipV4(), fc.ipV4Extended(), v6)], { numRuns: 3_000 })('on IP-like strings', (s) => {
    expect(ipFamily(s), JSON.stringify(s)).toBe(isIP(s));
  });

  test.each(['::', '::1', '1::', '1:2:3:4:5:6:7:8', '1:2:3:4:5:6:7::', '::ffff:10.0.0.1', 'fe80::1%lo0', '1.2.3.4', '0.0.0.0',
    '1:2:3:4:5:6:7:8:9', '1:2:3:4:5:6:7:8::', '::1:2:3:4:5:6:7:8', '1::2::3', '01.2.3.4', '256.1.1.1', '1.2.3', ':1', '1:', 'fe80::1%', '::%%', 'fe80::1%a_b', '12345::', 'host.example', ''])('%s', (s) => {
    expect(ipFamily(s)).toBe(isIP(s));
  });
});

describe('parseAddress / formatAddress', () => {
  test('forms', () => {
    expect(parseAddress('10.0.0.1:7946', 'bind')).toEqual({ host: '10.0.0.1', port: 7946, family: 4 });
    expect(parseAddress('[::1]:0', 'bind')).toEqual({ host: '::1', port: 0, family: 6 });
    expect(parseAddress('db.example:5432', 'seeds')).toEqual({ host: 'db.example', port: 5432, family: 0 });
    expect(formatAddress('::1', 7946)).toBe('[::1]:7946');
    expect(formatAddress('10.0.0.1', 7946)).toBe('10.0.0.1:7946');
  });

  test.each(['', '10.0.0.1', '::1:7946', '[::1]7946', '[10.0.0.1]:1', 'a b:1', 'h:65536', 'h:-1', 'h:'])('%j is an InvalidOptionError naming the option', (s) => {
    expect(() => parseAddress(s, 'seeds')).toThrowError(expect.objectContaining({ code: 'grapevine.invalid-option', option: 'seeds' }));
  });
});

describe('isUnicastAddress: what a peer may name', () => {
  test.each(['127.0.0.1:7946', '10.0.0.5:1', '[::1]:7946', '[fe80::1%eth0]:65535', '[2001:db8::2]:80'])('%s is accepted', (a) => {
    expect(isUnicastAddress(a)).toBe(true);
  });
  test.each(['127.0.0.1:0', '0.0.0.0:7946', '255.255.255.255:7946', '224.0.0.1:7946', '239.1.2.3:7946', '[::]:7946', '[::0]:7946',
    '[0:0:0:0:0:0:0:0]:7946', '[ff02::1]:7946', 'host.example:7946', 'n3', '127.0.0.1', '[::1]:0'])('%s is refused', (a) => {
    expect(isUnicastAddress(a)).toBe(false);
  });
});
