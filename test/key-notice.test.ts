/**
 * Keys that differ are named, not met with silence (src/core/key-notice.ts): a member that cannot
 * read a packet because of keys answers with a 4-byte notice in clear, at most once a second per
 * source, and a joiner says which seed answered and why, within its join timeout. The notice
 * changes nothing where it lands. Real members on 127.0.0.1, and the core alone.
 */
import { describe, expect, test } from 'vitest';
import { Grapevine, JoinError, Keyring, Membership, seededRng } from '../src/index.js';

const KEY_A = Buffer.alloc(32, 0xa1);
const KEY_B = Buffer.alloc(32, 0xb2);

describe('a joiner whose seeds cannot read its packets says so', () => {
  test.each([
    ['a different key', [KEY_A], [KEY_B], /answered: it cannot open our packets: its keyring does not hold the key we seal with/],
    ['no keyring, where the seed requires one', [KEY_A], undefined, /answered: it requires encryption and we send in clear/],
    ['a keyring, where the seed has none', undefined, [KEY_B], /answered: it has no keyring and we encrypt/],
  ])('%s: the warning comes before the join timeout, and the JoinError names the seed and the problem', async (_what, seedKeys, joinerKeys, meaning) => {
    const seed = await Grapevine.start({ name: 'seed', bind: '127.0.0.1:0', profile: 'local', ...(seedKeys !== undefined ? { keyring: seedKeys } : {}) });
    const warnings: { at: number; message: string }[] = [];
    const logger = { debug: () => undefined, info: () => undefined, error: () => undefined, warn: (message: string) => void warnings.push({ at: Date.now(), message }) };
    const started = Date.now();
    try {
      const joining = Grapevine.start({
        name: 'joiner', bind: '127.0.0.1:0', profile: 'local', seeds: [seed.address], joinTimeoutMs: 3_000, logger,
        ...(joinerKeys !== undefined ? { keyring: joinerKeys } : {}),
      });
      const error = await joining.then(() => undefined, (e: unknown) => e);
      expect(error).toBeInstanceOf(JoinError);
      expect((error as Error).message).toContain(`${seed.address} (answered: `);
      expect((error as Error).message).toMatch(meaning);
      const said = warnings.find((w) => w.message.startsWith(`seed ${seed.address} answered, but`));
      expect(said, JSON.stringify(warnings)).toBeDefined();
      expect((said as { at: number }).at - started).toBeLessThan(3_000);
      expect(seed.members().map((m) => m.name)).toEqual(['seed']);
    } finally {
      await seed.close();
    }
  }, 15_000);
});

describe('key notices in the core', () => {
  const sealed = (keys: Buffer[], name: string): Membership => new Membership({ name, addr: `${name}:1`, rng: seededRng(7), nowMs: 0, keyring: new Keyring(keys) });
  const drain = (m: Membership): Uint8Array[] => {
    const out: Uint8Array[] = [];
    for (let t = m.pollTransmit(); t !== undefined; t = m.pollTransmit()) out.push(t.bytes);
    return out;
  };

  test('at most one notice a second per source, four bytes in clear, never larger than the packet it answers', () => {
    const seed = sealed([KEY_A], 'seed');
    const stranger = sealed([KEY_B], 'stranger');
    stranger.join(0, ['seed:1']);
    const packet = drain(stranger).find((b) => b.length > 4) as Uint8Array;
    drain(seed);
    for (let n = 0; n < 100; n++) seed.handleDatagram(n, 'stranger:1', packet);
    const notices = drain(seed);
    expect(notices).toEqual([Uint8Array.of(0x47, 0x4b, 1, 1)]);
    seed.handleDatagram(1_000, 'stranger:1', packet);
    expect(drain(seed)).toHaveLength(1);
    // Too short to be a packet: not answered at all.
    seed.handleDatagram(5_000, 'elsewhere:1', Uint8Array.of(0x47, 0x45, 2));
    expect(drain(seed)).toEqual([]);
    expect(seed.stats.dropped['wrong-key']).toBe(101);
  });

  test('a notice, forged or not, changes nothing: it is counted as dropped input with what it means', () => {
    const member = sealed([KEY_A], 'm');
    const before = member.members();
    const events: unknown[] = [];
    member.handleDatagram(0, 'anyone:1', Uint8Array.of(0x47, 0x4b, 1, 2));
    for (let e = member.pollEvent(); e !== undefined; e = member.pollEvent()) events.push(e);
    expect(member.members()).toEqual(before);
    expect(drain(member)).toEqual([]);
    expect(events).toEqual([expect.objectContaining({ type: 'dropped', reason: 'key-refused', detail: expect.stringContaining('requires encryption') })]);
  });
});
