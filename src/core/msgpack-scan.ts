/**
 * A bounded structural scan of one MessagePack value, run before msgpackr decodes anything from
 * a peer. It walks iteratively (no recursion, so hostile nesting cannot exhaust the stack) and
 * rejects what our wire never uses: maps and extension types (which msgpackr would turn into
 * records, dates, sets or structure definitions). Every length is checked against the bytes
 * actually present and the limits given, so decoding the value afterwards cannot allocate more
 * than a small multiple of the input.
 */
export interface ScanLimits {
  /** Deepest array nesting; the message tuple itself is depth 1. */
  depthMax: number;
  /** Most elements in any one array. */
  arrayLengthMax: number;
  /** Longest string, in bytes. */
  stringBytesMax: number;
  /** Longest binary blob, in bytes. */
  binaryBytesMax: number;
}

export type ScanErrorReason = 'truncated' | 'too-deep' | 'too-long' | 'unsupported-type';

export type ScanResult = { ok: true; end: number } | { ok: false; reason: ScanErrorReason; offset: number };

/** Scans the value that starts at `offset`; on success `end` is the offset just past it. */
export function scanValue(bytes: Uint8Array, offset: number, limits: ScanLimits): ScanResult {
  const length = bytes.length;
  // stack[i] = values still to read at nesting level i (level 0 is the single top value).
  const stack: number[] = [1];
  let pos = offset;
  while (stack.length > 0) {
    const top = stack.length - 1;
    if (stack[top] === 0) {
      stack.pop();
      continue;
    }
    stack[top] = (stack[top] as number) - 1;
    if (pos >= length) return { ok: false, reason: 'truncated', offset: pos };
    const b = bytes[pos] as number;
    let skip = 0; // bytes of payload after the type byte and any length field
    let arrayCount = -1;
    let head = 1;
    if (b <= 0x7f || b >= 0xe0 || (b >= 0xc0 && b <= 0xc3)) {
      // fixint, negative fixint, nil, (never used), false, true
      if (b === 0xc1) return { ok: false, reason: 'unsupported-type', offset: pos };
    } else if (b >= 0xa0 && b <= 0xbf) {
      skip = b & 0x1f;
      if (skip > limits.stringBytesMax) return { ok: false, reason: 'too-long', offset: pos };
    } else if (b >= 0x90 && b <= 0x9f) {
      arrayCount = b & 0x0f;
    } else {
      switch (b) {
        case 0xcc: case 0xd0: skip = 1; break; // uint8, int8
        case 0xcd: case 0xd1: skip = 2; break; // uint16, int16
        case 0xce: case 0xd2: case 0xca: skip = 4; break; // uint32, int32, float32
        case 0xcf: case 0xd3: case 0xcb: skip = 8; break; // uint64, int64, float64
        case 0xd9: case 0xc4: head = 2; break; // str8, bin8
        case 0xda: case 0xc5: case 0xdc: head = 3; break; // str16, bin16, array16
        case 0xdb: case 0xc6: case 0xdd: head = 5; break; // str32, bin32, array32
        default:
          return { ok: false, reason: 'unsupported-type', offset: pos }; // maps, ext, fixext
      }
      if (head > 1) {
        if (pos + head > length) return { ok: false, reason: 'truncated', offset: pos };
        const n = readLength(bytes, pos + 1, head - 1);
        if (b === 0xdc || b === 0xdd) {
          arrayCount = n;
        } else {
          const isString = b === 0xd9 || b === 0xda || b === 0xdb;
          if (n > (isString ? limits.stringBytesMax : limits.binaryBytesMax)) {
            return { ok: false, reason: 'too-long', offset: pos };
          }
          skip = n;
        }
      }
    }
    pos += head;
    if (arrayCount >= 0) {
      if (arrayCount > limits.arrayLengthMax) return { ok: false, reason: 'too-long', offset: pos - head };
      // Each element takes at least one byte: a count beyond the input is a lie.
      if (arrayCount > length - pos) return { ok: false, reason: 'truncated', offset: pos - head };
      if (stack.length > limits.depthMax) return { ok: false, reason: 'too-deep', offset: pos - head };
      stack.push(arrayCount);
      continue;
    }
    if (pos + skip > length) return { ok: false, reason: 'truncated', offset: pos };
    pos += skip;
  }
  return { ok: true, end: pos };
}

function readLength(bytes: Uint8Array, at: number, width: number): number {
  let n = 0;
  for (let i = 0; i < width; i++) n = n * 256 + (bytes[at + i] as number);
  return n;
}
