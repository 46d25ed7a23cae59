/**
 * Keys for the command line, never on argv (where `ps` shows them): from a file named by
 * --keyring-file, or from the GRAPEVINE_KEYRING environment variable. One key per line (or
 * comma-separated in the variable), each 32 bytes as hex or base64; the first one seals.
 */
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { KEY_BYTES } from '../core/seal.js';
import { UsageError } from './args.js';

export const KEYRING_ENV = 'GRAPEVINE_KEYRING';

/** Decodes one key written as 64 hex digits or as base64 (standard or URL-safe). */
export function parseKey(text: string, where: string): Uint8Array {
  const s = text.trim();
  if (/^[0-9a-fA-F]{64}$/.test(s)) return Uint8Array.from(Buffer.from(s, 'hex'));
  if (/^[A-Za-z0-9+/_-]+={0,2}$/.test(s)) {
    const bytes = Buffer.from(s, s.includes('-') || s.includes('_') ? 'base64url' : 'base64');
    if (bytes.length === KEY_BYTES) return Uint8Array.from(bytes);
  }
  throw new UsageError(`${where}: not a key: expected ${KEY_BYTES * 2} hex digits or ${KEY_BYTES} bytes in base64 (44 characters), got ${s.length} characters`);
}

/** The keyring from --keyring-file or the environment; undefined when neither names one. */
export function loadKeyring(file: string | undefined, env: NodeJS.ProcessEnv = process.env): Uint8Array[] | undefined {
  let lines: { text: string; where: string }[];
  if (file !== undefined) {
    lines = readSecret(file, '--keyring-file').split('\n').map((text, i) => ({ text: text.replace(/#.*/, ''), where: `${file} line ${i + 1}` }));
  } else {
    const value = env[KEYRING_ENV];
    if (value === undefined || value.trim() === '') return undefined;
    lines = value.split(',').map((text, i) => ({ text, where: `${KEYRING_ENV} key ${i + 1}` }));
  }
  const keys = lines.filter((l) => l.text.trim() !== '').map((l) => parseKey(l.text, l.where));
  if (keys.length === 0) throw new UsageError(`${file ?? KEYRING_ENV}: no keys in it`);
  return keys;
}

/** The contents of a secret file named by `option`, or a UsageError. */
export function readSecret(file: string, option: string): string {
  try {
    return readFileSync(file, 'utf8');
  } catch (e) {
    throw new UsageError(`${option} ${file}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
  }
}

/** A new random key, base64 as Consul's `keygen` prints it (or hex). */
export function newKey(hex = false): string {
  return randomBytes(KEY_BYTES).toString(hex ? 'hex' : 'base64');
}
