import { describe, expect, test } from 'vitest';
import { PROFILES, pushPullIntervalMs, resolveConfig, retransmitLimit } from '../src/core/config.js';
import { suspicionTimeoutsMs } from '../src/core/suspicion.js';
import { InvalidOptionError } from '../src/core/errors.js';

describe('config', () => {
  test('profiles carry memberlist defaults (shared/REFERENCES.md)', () => {
    const pick = (p: keyof typeof PROFILES) => {
      const c = PROFILES[p];
      return [c.probeIntervalMs, c.probeTimeoutMs, c.indirectChecks, c.suspicionMult, c.suspicionMaxTimeoutMult,
        c.gossipIntervalMs, c.gossipNodes, c.retransmitMult, c.pushPullIntervalMs, c.udpPayloadBytesMax, c.awarenessMax, c.gossipToTheDeadMs];
    };
    expect(pick('lan')).toEqual([1_000, 500, 3, 4, 6, 200, 3, 4, 30_000, 1_400, 8, 30_000]);
    expect(pick('wan')).toEqual([5_000, 3_000, 3, 6, 6, 500, 4, 4, 60_000, 1_400, 8, 60_000]);
    expect(pick('local')).toEqual([1_000, 200, 1, 3, 6, 100, 3, 2, 15_000, 1_400, 8, 15_000]);
  });

  test('formulas match memberlist at the reference sizes', () => {
    const memberlist = resolveConfig({ pauseToleranceMs: 0 });
    expect(suspicionTimeoutsMs(memberlist, 100)).toEqual({ minMs: 8_000, maxMs: 48_000 });
    expect(suspicionTimeoutsMs(memberlist, 1_000)).toEqual({ minMs: 12_000, maxMs: 72_000 });
    expect(suspicionTimeoutsMs(memberlist, 3)).toEqual({ minMs: 4_000, maxMs: 24_000 }); // log10 floored at 1
    expect(suspicionTimeoutsMs(resolveConfig({ profile: 'wan' }), 100).minMs).toBe(60_000); // WAN keeps memberlist's formula
    // LAN's default pause tolerance, 3 s (with verification before a death): the tolerance, less the probe timeout, plus one gossip interval, whatever the size.
    const lan = resolveConfig();
    const tolerant = resolveConfig({ pauseToleranceMs: 3_000 });
    expect(tolerant).toEqual(lan);
    expect(suspicionTimeoutsMs(tolerant, 30)).toEqual({ minMs: 3_000 - 500 + 200, maxMs: 6 * 2_700 });
    expect(suspicionTimeoutsMs(tolerant, 1_000).minMs).toBe(2_700);
    expect(suspicionTimeoutsMs(resolveConfig({ pauseToleranceMs: 1 }), 2).minMs).toBe(1_000); // never below one probe interval
    expect(retransmitLimit(lan, 100)).toBe(12);
    expect(retransmitLimit(lan, 5)).toBe(4);
    expect(pushPullIntervalMs(lan, 32)).toBe(30_000);
    expect(pushPullIntervalMs(lan, 100)).toBe(90_000);
  });

  test('metaBytesMax and metaInlineBytesMax still work, as deprecated names of recordBytesMax and recordInlineBytesMax', () => {
    expect(resolveConfig({ metaBytesMax: 1_000, metaInlineBytesMax: 100 })).toMatchObject({ recordBytesMax: 1_000, recordInlineBytesMax: 100 });
    expect(resolveConfig({ metaBytesMax: 1_000, recordBytesMax: 2_000 }).recordBytesMax).toBe(2_000);
    expect(resolveConfig({ metaBytesMax: 1_000 })).not.toHaveProperty('metaBytesMax');
  });

  test('overrides apply on top of the chosen profile', () => {
    const c = resolveConfig({ profile: 'wan', gossipNodes: 5, lifeguard: false });
    expect(c.gossipNodes).toBe(5);
    expect(c.probeIntervalMs).toBe(5_000);
    expect(c.lifeguard).toBe(false);
  });

  test.each([
    [{ profile: 'moon' }, 'profile'],
    [{ probeIntervalMs: 0 }, 'probeIntervalMs'],
    [{ probeIntervalMs: Number.NaN }, 'probeIntervalMs'],
    [{ indirectChecks: 1.5 }, 'indirectChecks'],
    [{ udpPayloadBytesMax: 70_000 }, 'udpPayloadBytesMax'],
    [{ lifeguard: 'yes' }, 'lifeguard'],
    [{ probeTimeoutMs: 2_000 }, 'probeTimeoutMs'],
    [{ probeIntervalMz: 5 }, 'probeIntervalMz'],
    [{ toString: 5 }, 'toString'],
    [{ metaBytesMax: -1 }, 'metaBytesMax'],
  ])('%o is rejected naming %s', (options, option) => {
    expect(() => resolveConfig(options as never)).toThrowError(InvalidOptionError);
    expect(() => resolveConfig(options as never)).toThrowError(expect.objectContaining({ option, code: 'grapevine.invalid-option' }));
  });
});
