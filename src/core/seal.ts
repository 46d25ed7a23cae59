/**
 * Packet encryption: NaCl secretbox (XSalsa20-Poly1305, @noble/ciphers) under a keyring. Packets are sealed
 * with the primary key and a random 24-byte nonce; any key in the ring opens them, so a cluster
 * can rotate keys live: add the new key everywhere, make it primary everywhere, then remove the
 * old one. A sealed packet is the 3-byte header "GE" + seal version, the nonce, then the box.
 */
import { xsalsa20poly1305 } from '@noble/ciphers/salsa.js';
import { sha256 } from '@noble/hashes/sha2.js';
import { InvalidOptionError } from './errors.js';
import type { Rng } from './rng.js';

export const KEY_BYTES = 32;
const NONCE_BYTES = 24;
/** The Poly1305 tag, before the ciphertext as in NaCl. */
const TAG_BYTES = 16;
// 'G', 'E', seal version 2: the plaintext starts with a replay stamp (replay.ts); version 1 members drop these, and theirs are dropped here.
const SEAL_HEADER = [0x47, 0x45, 2] as const;
/** Bytes a sealed packet adds to its plaintext. */
export const SEAL_OVERHEAD_BYTES = SEAL_HEADER.length + NONCE_BYTES + TAG_BYTES;

export class Keyring {
  private ring: Uint8Array[] = [];
  private readonly listeners = new Set<() => void>();

  /** `keys[0]` becomes the primary. Throws InvalidOptionError('keyring') on a bad key; nothing is kept then. */
  constructor(keys: readonly Uint8Array[]) {
    if (keys.length === 0) throw new InvalidOptionError('keyring', 'needs at least one key');
    for (const key of keys) checkKey(key);
    this.ring = keys.map((k) => Uint8Array.from(k));
  }

  /** The key packets are sealed with. */
  get primaryKey(): Uint8Array {
    return Uint8Array.from(this.ring[0] as Uint8Array);
  }

  /** Copies of every key, primary first. */
  keys(): Uint8Array[] {
    return this.ring.map((k) => Uint8Array.from(k));
  }

  /** Accepts packets sealed with `key` from now on (no-op if present). */
  add(key: Uint8Array): void {
    checkKey(key);
    if (this.indexOf(key) >= 0) return;
    this.ring.push(Uint8Array.from(key));
    this.changed();
  }

  /** Makes `key`, which must already be in the ring, the primary. */
  use(key: Uint8Array): void {
    checkKey(key);
    const i = this.indexOf(key);
    if (i < 0) throw new InvalidOptionError('keyring', 'key to use is not in the ring; add it first');
    if (i === 0) return;
    const [k] = this.ring.splice(i, 1);
    this.ring.unshift(k as Uint8Array);
    this.changed();
  }

  /** Stops accepting `key`. The primary cannot be removed. */
  remove(key: Uint8Array): void {
    checkKey(key);
    const i = this.indexOf(key);
    if (i === 0) throw new InvalidOptionError('keyring', 'cannot remove the primary key; use another one first');
    if (i < 0) return;
    this.ring.splice(i, 1);
    this.changed();
  }

  /** Calls `listener` after every change to the ring (a key added, made primary or removed). Returns the unsubscribe function. */
  onChange(listener: () => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  /** Seals `plain` under the primary key with a nonce drawn from `rng`. */
  seal(plain: Uint8Array, rng: Rng): Uint8Array {
    const out = new Uint8Array(SEAL_HEADER.length + NONCE_BYTES + plain.length + TAG_BYTES);
    out.set(SEAL_HEADER, 0);
    const nonce = out.subarray(SEAL_HEADER.length, SEAL_HEADER.length + NONCE_BYTES);
    const view = new DataView(nonce.buffer, nonce.byteOffset, NONCE_BYTES);
    for (let i = 0; i < NONCE_BYTES; i += 4) view.setUint32(i, rng.nextUint32());
    out.set(xsalsa20poly1305(this.ring[0] as Uint8Array, nonce).encrypt(plain), SEAL_HEADER.length + NONCE_BYTES);
    return out;
  }

  /** Opens a sealed packet with any key in the ring. */
  open(sealed: Uint8Array): { ok: true; plain: Uint8Array } | { ok: false; reason: 'plaintext' | 'bad-seal' | 'wrong-key' } {
    if (!isSealed(sealed)) return { ok: false, reason: sealed[1] === 0x56 ? 'plaintext' : 'bad-seal' };
    if (sealed.length < SEAL_OVERHEAD_BYTES) return { ok: false, reason: 'bad-seal' };
    const nonce = sealed.subarray(SEAL_HEADER.length, SEAL_HEADER.length + NONCE_BYTES);
    const box = sealed.subarray(SEAL_HEADER.length + NONCE_BYTES);
    for (const key of this.ring) {
      try {
        return { ok: true, plain: xsalsa20poly1305(key, nonce).decrypt(box) };
      } catch {
        // not this key (or forged): try the next
      }
    }
    return { ok: false, reason: 'wrong-key' };
  }

  private changed(): void {
    for (const l of this.listeners) l();
  }

  private indexOf(key: Uint8Array): number {
    return this.ring.findIndex((k) => k.length === key.length && k.every((b, i) => b === key[i]));
  }
}

/**
 * A key's public name: the first 8 bytes of its SHA-256, hex. Members show which keys they hold
 * by these (a preimage of a 32-byte random key is out of reach), never by the keys.
 */
export function keyFingerprint(key: Uint8Array): string {
  checkKey(key);
  let hex = '';
  for (const b of sha256(key).subarray(0, 8)) hex += b.toString(16).padStart(2, '0');
  return hex;
}

/** True if `bytes` carries the sealed-packet header. */
export function isSealed(bytes: Uint8Array): boolean {
  return bytes[0] === SEAL_HEADER[0] && bytes[1] === SEAL_HEADER[1] && bytes[2] === SEAL_HEADER[2];
}

function checkKey(key: Uint8Array): void {
  if (!(key instanceof Uint8Array) || key.length !== KEY_BYTES) {
    throw new InvalidOptionError('keyring', `keys must be ${KEY_BYTES} bytes, got ${key instanceof Uint8Array ? key.length : typeof key}`);
  }
}
