/**
 * Keyring changes spread through the cluster, as Consul's `keyring -install/-use/-remove` do
 * through serf: one member issues a change, it applies it to its own ring and gossips it; every
 * member that finds it newer applies it and gossips it on. Changes are registers, last writer
 * wins: one per key (installed or removed) and one for the primary, each ordered by (version,
 * origin), so members that hear them in any order end with the same ring. A removed key that is
 * still some member's primary stays until that member uses another.
 *
 * Only sealed packets reach here (a member without a keyring drops these), so only a key holder
 * can change a ring. Whether every member holds a key before it is used is checked by the
 * issuer's interface, which sees each member's key fingerprints in its record.
 */
import type { Context } from './context.js';
import { InvalidOptionError, InvalidStateError } from './errors.js';
import { keyFingerprint } from './seal.js';
import { encodeMessage, KeyringAction, type KeyringOpMessage, MessageType } from './wire.js';

/** Per-key registers kept; the oldest removals are forgotten first (their keys are long gone). */
const KEYS_TRACKED_MAX = 64;

/** A change's place in the order: version, then origin, then what it does (so equal stamps from a misbehaving issuer still order). */
interface Stamp { version: number; origin: string; what: string }

function newer(a: Stamp, b: Stamp | undefined): boolean {
  if (b === undefined || a.version !== b.version) return b === undefined || a.version > b.version;
  return a.origin !== b.origin ? a.origin > b.origin : a.what > b.what;
}

export class KeyringOps {
  /** Per key fingerprint: the newest install (or use) or remove, and its key. */
  private readonly keys = new Map<string, Stamp & { action: KeyringAction; key: Uint8Array }>();
  private primary: Stamp | undefined;
  /** The highest version heard, so a member whose clock is behind still issues newer changes. */
  private highest = 0;

  constructor(private readonly ctx: Context) {}

  /** Applies a change issued here and spreads it. `wallMs` is the issuer's clock (the core has none). */
  issue(action: KeyringAction, key: Uint8Array, wallMs: number): void {
    const ring = this.ctx.keyring;
    if (ring === undefined) throw new InvalidStateError('keyring changes need a keyring: this member does not encrypt');
    const fp = keyFingerprint(key); // checks the key
    if (action === KeyringAction.Remove && fp === keyFingerprint(ring.primaryKey)) {
      throw new InvalidOptionError('keyring', 'cannot remove the primary key; use another one first');
    }
    const version = Math.max(Math.floor(wallMs), this.highest + 1);
    this.onMessage('', { type: MessageType.KeyringOp, action, key: Uint8Array.from(key), version, origin: this.ctx.name });
  }

  onMessage(from: string, m: KeyringOpMessage): void {
    const ring = this.ctx.keyring;
    if (ring === undefined) return void this.ctx.drop(from, 'unsealed-keyring-change', 'a keyring change, but this member has no keyring');
    this.highest = Math.max(this.highest, m.version);
    const fp = keyFingerprint(m.key);
    const stamp = { version: m.version, origin: m.origin, what: `${m.action} ${fp}` };
    // A use installs its key too: two registers, each applied on its own, so the order heard never matters.
    const keyChanged = newer(stamp, this.keys.get(fp));
    const primaryChanged = m.action === KeyringAction.Use && newer(stamp, this.primary);
    if (!keyChanged && !primaryChanged) return;
    if (keyChanged) {
      this.keys.delete(fp);
      this.keys.set(fp, { ...stamp, action: m.action === KeyringAction.Remove ? KeyringAction.Remove : KeyringAction.Install, key: m.key });
      if (m.action !== KeyringAction.Remove) ring.add(m.key);
      this.forgetOldest();
    }
    if (primaryChanged) {
      this.primary = stamp;
      ring.add(m.key);
      ring.use(m.key);
    }
    this.removePending();
    // Queued per key: a newer change of the same key replaces one not yet sent its full number of times.
    this.ctx.broadcasts.enqueue(`\0keyring ${fp}`, encodeMessage(m));
  }

  /** Removals not yet done because the key was the primary: done once it no longer is. */
  private removePending(): void {
    const ring = this.ctx.keyring;
    if (ring === undefined) return;
    const primary = keyFingerprint(ring.primaryKey);
    for (const [fp, k] of this.keys) if (k.action === KeyringAction.Remove && fp !== primary) ring.remove(k.key);
  }

  private forgetOldest(): void {
    if (this.keys.size <= KEYS_TRACKED_MAX) return;
    for (const [fp, k] of this.keys) {
      if (k.action === KeyringAction.Remove) {
        this.keys.delete(fp);
        return;
      }
    }
    const first = this.keys.keys().next();
    if (!first.done) this.keys.delete(first.value);
  }
}
