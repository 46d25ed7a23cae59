/**
 * Telling a member that its packets cannot be read here because keys differ: it sealed with a
 * key this keyring lacks, it sends in clear where we require encryption, or it encrypts where we
 * have no keyring. Otherwise such a member only sees silence (and a joiner says "no seed
 * answered"). The notice is four bytes in clear, "GK", a version and the problem: nothing secret,
 * smaller than any packet it answers, at most one per source address per second. It changes
 * nothing where it arrives (anyone can forge one): the receiver counts it as dropped input, with
 * the problem as the detail, which the runtime reports.
 */
export type KeyProblem = 'wrong-key' | 'plaintext' | 'encrypted';

const NOTICE_0 = 0x47; // 'G'
const NOTICE_1 = 0x4b; // 'K'
const NOTICE_VERSION = 1;
const CODES: readonly KeyProblem[] = ['wrong-key', 'plaintext', 'encrypted'];
export const KEY_NOTICE_BYTES = 4;

/** What the member that sent the notice could not do with our packets, in our words. */
const MEANING: Readonly<Record<KeyProblem, string>> = {
  'wrong-key': 'it cannot open our packets: its keyring does not hold the key we seal with',
  plaintext: 'it requires encryption and we send in clear: give this member the cluster\'s keyring',
  encrypted: 'it has no keyring and we encrypt: give it the keyring, or run this member without one',
};

export function isKeyProblem(reason: string): reason is KeyProblem {
  return (CODES as readonly string[]).includes(reason);
}

export function encodeKeyNotice(problem: KeyProblem): Uint8Array {
  return Uint8Array.of(NOTICE_0, NOTICE_1, NOTICE_VERSION, CODES.indexOf(problem) + 1);
}

/** The meaning of a key notice, or undefined if `bytes` is not one. */
export function readKeyNotice(bytes: Uint8Array): string | undefined {
  if (bytes.length !== KEY_NOTICE_BYTES || bytes[0] !== NOTICE_0 || bytes[1] !== NOTICE_1 || bytes[2] !== NOTICE_VERSION) return undefined;
  const problem = CODES[(bytes[3] as number) - 1];
  return problem === undefined ? undefined : MEANING[problem];
}

/** Sources answered recently: one notice per source per NOTICE_INTERVAL_MS, the memory bounded. */
const NOTICE_INTERVAL_MS = 1_000;
const SOURCES_MAX = 1_024;

export class KeyNotices {
  private readonly last = new Map<string, number>();

  /** Whether to answer `from` now (and if so, remember it). */
  allow(nowMs: number, from: string): boolean {
    const at = this.last.get(from);
    if (at !== undefined && nowMs - at < NOTICE_INTERVAL_MS) return false;
    if (this.last.size >= SOURCES_MAX) this.last.clear();
    this.last.set(from, nowMs);
    return true;
  }
}
