/**
 * Go's literals as go-bexpr reads them (strconv): quoted strings with Go's escapes, integers in
 * every base ParseInt takes, booleans as ParseBool, and strings quoted back for error messages.
 */


const SIMPLE_ESCAPES: Readonly<Record<string, number>> = { a: 7, b: 8, f: 12, n: 10, r: 13, t: 9, v: 11, '\\': 92, '"': 34 };
const utf8Encoder = new TextEncoder();
const utf8Decoder = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });

/**
 * strconv.Unquote of a double-quoted string's body, or undefined where it fails. `\x` and octal
 * escapes are bytes in Go; we refuse the few strings whose bytes are then not UTF-8 (Go would keep
 * them, and they could equal no JSON string).
 */
export function unquote(body: string): string | undefined {
  if (body.includes('\n')) return undefined;
  if (!body.includes('\\')) return body;
  const bytes: number[] = [];
  const rune = (cp: number): void => {
    bytes.push(...utf8Encoder.encode(String.fromCodePoint(cp)));
  };
  for (let i = 0; i < body.length; ) {
    const cp = body.codePointAt(i) as number;
    if (cp !== 0x5c) {
      rune(cp);
      i += cp > 0xffff ? 2 : 1;
      continue;
    }
    const c = body[i + 1] ?? '';
    i += 2;
    const simple = SIMPLE_ESCAPES[c];
    if (simple !== undefined) {
      bytes.push(simple);
    } else if (c === 'x' || c === 'u' || c === 'U') {
      const n = c === 'x' ? 2 : c === 'u' ? 4 : 8;
      const hex = body.slice(i, i + n);
      if (hex.length !== n || !/^[0-9a-fA-F]+$/.test(hex)) return undefined;
      i += n;
      const v = parseInt(hex, 16);
      if (c === 'x') bytes.push(v);
      else if (v > 0x10ffff || (v >= 0xd800 && v <= 0xdfff)) return undefined;
      else rune(v);
    } else if (c >= '0' && c <= '7') {
      const oct = body.slice(i - 1, i + 2);
      if (!/^[0-7]{3}$/.test(oct) || parseInt(oct, 8) > 255) return undefined;
      bytes.push(parseInt(oct, 8));
      i += 2;
    } else {
      return undefined;
    }
  }
  try {
    return utf8Decoder.decode(Uint8Array.from(bytes));
  } catch {
    return undefined;
  }
}

const INT64_MAX = (1n << 63n) - 1n;
const UINT64_MAX = (1n << 64n) - 1n;
const DIGITS = '0123456789abcdefghijklmnopqrstuvwxyz';

/** strconv.ParseInt(s, 0, 64): base prefixes 0b 0o 0x and a bare leading 0 (octal), `_` separators; or Go's error. */
export function parseGoInt(s: string): bigint | string {
  const fail = (why: string): string => `strconv.ParseInt: parsing ${goQuote(s)}: ${why}`;
  const negative = s.startsWith('-');
  const t = s.startsWith('-') || s.startsWith('+') ? s.slice(1) : s;
  if (t === '') return fail('invalid syntax');
  let base = 10n;
  let digits = t;
  if (t[0] === '0') {
    const prefix = t.length >= 3 ? ({ b: 2n, o: 8n, x: 16n } as Record<string, bigint>)[(t[1] as string).toLowerCase()] : undefined;
    base = prefix ?? 8n;
    digits = t.slice(prefix === undefined ? 1 : 2);
  }
  let n = 0n;
  let underscores = false;
  for (const ch of digits) {
    if (ch === '_') {
      underscores = true;
      continue;
    }
    const d = BigInt(DIGITS.indexOf(ch.toLowerCase()));
    if (d < 0n || d >= base) return fail('invalid syntax');
    n = n * base + d;
    if (n > UINT64_MAX) return fail('value out of range');
  }
  if (underscores && !underscoresOk(t)) return fail('invalid syntax');
  if (n > (negative ? INT64_MAX + 1n : INT64_MAX)) return fail('value out of range');
  return negative ? -n : n;
}

/** strconv's underscoreOK: `_` only between digits, or between a base prefix and a digit. */
function underscoresOk(s: string): boolean {
  let saw = '^';
  let i = 0;
  const hex = /^0x/i.test(s);
  if (/^0[box]/i.test(s)) {
    i = 2;
    saw = '0';
  }
  for (; i < s.length; i++) {
    const c = s[i] as string;
    if (/[0-9]/.test(c) || (hex && /[a-f]/i.test(c))) saw = '0';
    else if (c === '_') {
      if (saw !== '0') return false;
      saw = '_';
    } else {
      if (saw === '_') return false;
      saw = '!';
    }
  }
  return saw !== '_';
}

/** strconv.ParseBool, or Go's error. */
export function parseGoBool(s: string): boolean | string {
  if (['1', 't', 'T', 'TRUE', 'true', 'True'].includes(s)) return true;
  if (['0', 'f', 'F', 'FALSE', 'false', 'False'].includes(s)) return false;
  return `strconv.ParseBool: parsing ${goQuote(s)}: invalid syntax`;
}

const GO_ESCAPES: Readonly<Record<string, string>> = { '\x07': '\\a', '\b': '\\b', '\f': '\\f', '\n': '\\n', '\r': '\\r', '\t': '\\t', '\v': '\\v' };
const PRINTABLE = /^[\p{L}\p{M}\p{N}\p{P}\p{S} ]$/u;

/** strconv.Quote, which is what bexpr's `%q` prints. */
export function goQuote(s: string): string {
  let out = '"';
  for (const ch of s) {
    const cp = ch.codePointAt(0) as number;
    const hex = (width: number): string => cp.toString(16).padStart(width, '0');
    if (ch === '"' || ch === '\\') out += `\\${ch}`;
    else if (PRINTABLE.test(ch)) out += ch;
    else out += GO_ESCAPES[ch] ?? (cp < 0x80 ? `\\x${hex(2)}` : cp < 0x10000 ? `\\u${hex(4)}` : `\\U${hex(8)}`);
  }
  return `${out}"`;
}
