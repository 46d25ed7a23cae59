/**
 * Go's regular expressions (RE2 syntax) for `?filter=` `matches`, run as a Thompson NFA: time
 * linear in the text, so no pattern from a request can stall the event loop that also runs
 * gossip (a backtracking engine such as V8's takes exponential time on `(a|a)*b`). Constructs RE2
 * lacks (lookaround, backreferences, possessive repeats) are syntax errors, as in Go.
 */

/** Nesting deeper than this is refused (the parser recurses). */
const REGEXP_DEPTH_MAX = 100;

/** Compiles a Go (RE2) pattern to a linear-time matcher; `fail` reports a syntax error as Go's regexp package words it. */
export function compileRe2(pattern: string, budget: { insts: number }, fail: (code: string, expr: string) => never): (text: string) => boolean {
  const re = new RegexpParser(pattern, fail).parse();
  const insts: Inst[] = [{ op: 'match' }];
  const emit = (inst: Inst): number => {
    if (--budget.insts < 0) fail('expression too large', pattern);
    return insts.push(inst) - 1;
  };
  const start = compileRe(re, 0, emit, insts);
  return (text) => run(insts, start, text);
}


type CharTest = (cp: number) => boolean;
type Assertion = 'text-start' | 'text-end' | 'line-start' | 'line-end' | 'word' | 'not-word';
/** A parsed pattern; `max` -1 is unbounded, and an empty `cat` matches the empty string. */
type Re =
  | { readonly kind: 'char'; readonly test: CharTest }
  | { readonly kind: 'assert'; readonly at: Assertion }
  | { readonly kind: 'cat' | 'alt'; readonly subs: readonly Re[] }
  | { readonly kind: 'repeat'; readonly sub: Re; readonly min: number; readonly max: number };
interface Flags {
  fold: boolean;
  multiLine: boolean;
  dotNL: boolean;
}

const isDigit = (c: number): boolean => c >= 0x30 && c <= 0x39;
const isWordChar = (c: number): boolean => isDigit(c) || (c >= 0x41 && c <= 0x5a) || (c >= 0x61 && c <= 0x7a) || c === 0x5f;
const isAlnum = (c: number): boolean => isWordChar(c) && c !== 0x5f;
const inRanges =
  (...ranges: number[]): CharTest =>
  (c) => {
    for (let i = 0; i + 1 < ranges.length; i += 2) if (c >= (ranges[i] as number) && c <= (ranges[i + 1] as number)) return true;
    return false;
  };
const not =
  (test: CharTest): CharTest =>
  (c) =>
    !test(c);

/** Go's Perl classes (\d \s \w) and POSIX classes, ASCII only as in RE2. */
const PERL_CLASSES: Readonly<Record<string, CharTest>> = {
  d: inRanges(0x30, 0x39),
  s: inRanges(0x09, 0x0a, 0x0c, 0x0d, 0x20, 0x20),
  w: isWordChar,
};
const POSIX_CLASSES: Readonly<Record<string, CharTest>> = {
  alnum: isAlnum,
  alpha: inRanges(0x41, 0x5a, 0x61, 0x7a),
  ascii: inRanges(0, 0x7f),
  blank: inRanges(0x09, 0x09, 0x20, 0x20),
  cntrl: inRanges(0, 0x1f, 0x7f, 0x7f),
  digit: inRanges(0x30, 0x39),
  graph: inRanges(0x21, 0x7e),
  lower: inRanges(0x61, 0x7a),
  print: inRanges(0x20, 0x7e),
  punct: inRanges(0x21, 0x2f, 0x3a, 0x40, 0x5b, 0x60, 0x7b, 0x7e),
  space: inRanges(0x09, 0x0d, 0x20, 0x20),
  upper: inRanges(0x41, 0x5a),
  word: isWordChar,
  xdigit: inRanges(0x30, 0x39, 0x41, 0x46, 0x61, 0x66),
};
/** Go's unicode.Categories; any other name is tried as a script (unicode.Scripts). */
const CATEGORIES = new Set('C Cc Cf Co Cs L Ll Lm Lo Lt Lu M Mc Me Mn N Nd Nl No P Pc Pd Pe Pf Pi Po Ps S Sc Sk Sm So Z Zl Zp Zs'.split(' '));

/** The simple case foldings of a code point (RE2 folds by Unicode's orbits; these cover them but for a few). */
function caseVariants(cp: number): number[] {
  if (cp < 0x80) return cp >= 0x41 && cp <= 0x5a ? [cp, cp + 32] : cp >= 0x61 && cp <= 0x7a ? [cp, cp - 32] : [cp];
  const one = (s: string): number => ([...s].length === 1 ? (s.codePointAt(0) as number) : cp);
  const lower = one(String.fromCodePoint(cp).toLowerCase());
  const upper = one(String.fromCodePoint(cp).toUpperCase());
  return [cp, lower, upper, one(String.fromCodePoint(lower).toUpperCase()), one(String.fromCodePoint(upper).toLowerCase())];
}

const folded =
  (test: CharTest): CharTest =>
  (c) =>
    caseVariants(c).some(test);

/**
 * Go's regexp/syntax parser with the flags regexp.Compile uses (Perl: ClassNL, OneLine, PerlX,
 * UnicodeGroups), as recursive descent. Its error codes and quoted fragments are Go's. Whatever it
 * does not know is refused, which is how lookaround, backreferences, possessive and atomic groups
 * (all absent from RE2) come to be refused.
 */
class RegexpParser {
  private i = 0;
  private depth = 0;
  private readonly names = new Set<string>();

  constructor(
    private readonly src: string,
    private readonly fail: (code: string, expr: string) => never,
  ) {}

  parse(): Re {
    const re = this.alternation({ fold: false, multiLine: false, dotNL: false });
    if (this.i < this.src.length) this.fail('unexpected )', this.src);
    return re;
  }

  /** Branches separated by `|`, up to `)` or the end; `(?flags)` changes `flags` for the rest of the group. */
  private alternation(outer: Flags): Re {
    const flags = { ...outer };
    const branches = [this.concatenation(flags)];
    while (this.src[this.i] === '|') {
      this.i++;
      branches.push(this.concatenation(flags));
    }
    return branches.length === 1 ? (branches[0] as Re) : { kind: 'alt', subs: branches };
  }

  private concatenation(flags: Flags): Re {
    const items: Re[] = [];
    let lastRepeat: number | undefined;
    for (;;) {
      const c = this.src.codePointAt(this.i);
      if (c === undefined || c === 0x7c || c === 0x29) break;
      const start = this.i;
      const bounds = this.repetition();
      if (bounds !== undefined) {
        // Go refuses stacked repetition (a**, a*+) and a repetition of nothing.
        if (lastRepeat !== undefined) this.fail('invalid nested repetition operator', this.src.slice(lastRepeat, this.i));
        const sub = items.pop();
        if (sub === undefined) this.fail('missing argument to repetition operator', this.src.slice(start, this.i));
        const re: Re = { kind: 'repeat', sub: sub as Re, min: bounds[0], max: bounds[1] };
        if (bounds[2] && !repeatIsValid(re, 1000)) this.fail('invalid repeat count', this.src.slice(start, this.i));
        items.push(re);
        lastRepeat = start;
        continue;
      }
      lastRepeat = undefined;
      const item = this.atom(c, flags);
      if (item !== undefined) items.push(item);
    }
    return items.length === 1 ? (items[0] as Re) : { kind: 'cat', subs: items };
  }

  /** `*` `+` `?` `{n}` `{n,}` `{n,m}`, each with an optional `?`: [min, max, counted], or undefined (a `{` that is no repeat is a literal). */
  private repetition(): [number, number, boolean] | undefined {
    const c = this.src[this.i];
    let bounds: [number, number, boolean];
    if (c === '*' || c === '+' || c === '?') {
      this.i++;
      bounds = c === '*' ? [0, -1, false] : c === '+' ? [1, -1, false] : [0, 1, false];
    } else if (c === '{') {
      const m = /^\{(0|[1-9][0-9]*)(,(0|[1-9][0-9]*)?)?\}/.exec(this.src.slice(this.i));
      if (m === null) return undefined;
      const min = Number(m[1]);
      const max = m[2] === undefined ? min : m[3] === undefined ? -1 : Number(m[3]);
      if (min > 1000 || max > 1000 || (max >= 0 && min > max)) this.fail('invalid repeat count', m[0]);
      this.i += m[0].length;
      bounds = [min, max, true];
    } else {
      return undefined;
    }
    if (this.src[this.i] === '?') this.i++; // non-greedy: the same strings match
    return bounds;
  }

  /** One item of a concatenation; undefined for a flags-only group. */
  private atom(c: number, flags: Flags): Re | undefined {
    switch (c) {
      case 0x28: // (
        return this.group(flags);
      case 0x5b: // [
        return this.charClass(flags);
      case 0x5e: // ^
        this.i++;
        return { kind: 'assert', at: flags.multiLine ? 'line-start' : 'text-start' };
      case 0x24: // $
        this.i++;
        return { kind: 'assert', at: flags.multiLine ? 'line-end' : 'text-end' };
      case 0x2e: // .
        this.i++;
        return { kind: 'char', test: flags.dotNL ? () => true : (x) => x !== 10 };
      case 0x5c: // \
        return this.backslash(flags);
      default:
        this.i += c > 0xffff ? 2 : 1;
        return literal(c, flags);
    }
  }

  private backslash(flags: Flags): Re {
    const start = this.i;
    const c = this.src[this.i + 1];
    const assertion = ({ A: 'text-start', z: 'text-end', b: 'word', B: 'not-word' } as Record<string, Assertion>)[c ?? ''];
    if (assertion !== undefined) {
      this.i += 2;
      return { kind: 'assert', at: assertion };
    }
    if (c === 'C') this.fail('invalid escape sequence', '\\C');
    if (c === 'Q') {
      const end = this.src.indexOf('\\E', this.i + 2);
      const text = this.src.slice(this.i + 2, end === -1 ? undefined : end);
      this.i = end === -1 ? this.src.length : end + 2;
      return { kind: 'cat', subs: [...text].map((ch) => literal(ch.codePointAt(0) as number, flags)) };
    }
    const test = this.classEscape();
    if (test !== undefined) return { kind: 'char', test: flags.fold ? folded(test) : test };
    this.i = start;
    return literal(this.escape(), flags);
  }

  /** `\d` `\D` `\s` `\S` `\w` `\W`, `\pL` `\p{Greek}` `\PL` `\p{^Greek}`; undefined if none (position kept). */
  private classEscape(): CharTest | undefined {
    const c = this.src[this.i + 1];
    const perl = PERL_CLASSES[(c ?? '').toLowerCase()];
    if (perl !== undefined && c !== undefined && /[dswDSW]/.test(c)) {
      this.i += 2;
      return c === c.toUpperCase() ? not(perl) : perl;
    }
    if (c !== 'p' && c !== 'P') return undefined;
    const start = this.i;
    let name: string;
    if (this.src[this.i + 2] === '{') {
      const end = this.src.indexOf('}', this.i);
      if (end === -1) this.fail('invalid character class range', this.src.slice(start));
      name = this.src.slice(this.i + 3, end);
      this.i = end + 1;
    } else {
      const letter = this.src.codePointAt(this.i + 2);
      if (letter === undefined) this.fail('invalid escape sequence', this.src.slice(start));
      name = String.fromCodePoint(letter as number);
      this.i += 2 + name.length;
    }
    const negate = (c === 'P') !== name.startsWith('^');
    const test = unicodeClass(name.replace(/^\^/, ''));
    if (test === undefined) this.fail('invalid character class range', this.src.slice(start, this.i));
    return negate ? not(test as CharTest) : test;
  }

  /** A single-character escape (Go's parseEscape), returning its code point. */
  private escape(): number {
    const start = this.i;
    this.i++;
    const c = this.src.codePointAt(this.i);
    if (c === undefined) this.fail('trailing backslash at end of expression', '');
    this.i += (c as number) > 0xffff ? 2 : 1;
    const bad = (): never => this.fail('invalid escape sequence', this.src.slice(start, this.i));
    if ((c as number) < 0x80 && !isAlnum(c as number)) return c as number;
    const ch = String.fromCodePoint(c as number);
    const simple = ({ a: 7, f: 12, n: 10, r: 13, t: 9, v: 11 } as Record<string, number>)[ch];
    if (simple !== undefined) return simple;
    if (ch >= '0' && ch <= '7') {
      // \1 to \7 alone would be backreferences, which RE2 lacks; with more digits, octal.
      const m = /^[0-7]{0,2}/.exec(this.src.slice(this.i)) as RegExpExecArray;
      if (ch !== '0' && m[0] === '') bad();
      this.i += m[0].length;
      return parseInt(ch + m[0], 8);
    }
    if (ch === 'x') {
      const m = /^\{([0-9a-fA-F]+)\}|^[0-9a-fA-F]{2}/.exec(this.src.slice(this.i));
      const v = m === null ? -1 : parseInt(m[1] ?? m[0], 16);
      if (m === null || v > 0x10ffff) return bad();
      this.i += m[0].length;
      return v;
    }
    return bad();
  }

  private group(flags: Flags): Re | undefined {
    const start = this.i;
    const rest = this.src.slice(start);
    if (rest.startsWith('(?P<') || rest.startsWith('(?<')) {
      const end = rest.indexOf('>');
      if (end === -1) this.fail('invalid named capture', rest);
      const capture = rest.slice(0, end + 1);
      const name = capture.slice(rest[2] === 'P' ? 4 : 3, -1);
      if (!/^[A-Za-z0-9_]+$/.test(name)) this.fail('invalid named capture', capture);
      if (this.names.has(name)) this.fail('duplicate capture group name', capture);
      this.names.add(name);
      this.i += capture.length;
      return this.groupBody(flags);
    }
    if (rest[1] !== '?') {
      this.i++;
      return this.groupBody(flags);
    }
    // (?flags) or (?flags:re); a flag after `-` clears it.
    const set = { ...flags };
    let on = true;
    let sawFlag = false;
    for (let j = 2; j < rest.length; j++) {
      const c = rest[j] as string;
      if (c === 'i' || c === 'm' || c === 's' || c === 'U') {
        if (c === 'i') set.fold = on;
        if (c === 'm') set.multiLine = on;
        if (c === 's') set.dotNL = on;
        sawFlag = true;
        continue;
      }
      if (c === '-' && on) {
        on = false;
        sawFlag = false;
        continue;
      }
      if ((c === ':' || c === ')') && (on || sawFlag)) {
        this.i = start + j + 1;
        if (c === ':') return this.groupBody(set);
        Object.assign(flags, set);
        return undefined;
      }
      this.fail('invalid or unsupported Perl syntax', rest.slice(0, j + 1));
    }
    return this.fail('invalid or unsupported Perl syntax', rest);
  }

  private groupBody(flags: Flags): Re {
    if (++this.depth > REGEXP_DEPTH_MAX) this.fail('expression nests too deeply', this.src);
    const re = this.alternation(flags);
    this.depth--;
    if (this.src[this.i] !== ')') this.fail('missing closing )', this.src);
    this.i++;
    return re;
  }

  /** `[...]` with ranges, escapes, Perl, POSIX and Unicode classes; `-` is literal where it cannot make a range. */
  private charClass(flags: Flags): Re {
    const whole = this.src.slice(this.i);
    this.i++;
    const negate = this.src[this.i] === '^';
    if (negate) this.i++;
    const tests: CharTest[] = [];
    const ranges: number[] = [];
    for (let first = true; first || this.src[this.i] !== ']'; first = false) {
      if (this.i >= this.src.length) this.fail('missing closing ]', whole);
      // Go takes `[:` up to the first `:]` as a POSIX class, and refuses an unknown name.
      const posix = /^\[:(\^?)([\s\S]*?):\]/.exec(this.src.slice(this.i));
      if (posix !== null) {
        const name = posix[2] as string;
        const test = Object.hasOwn(POSIX_CLASSES, name) ? POSIX_CLASSES[name] : undefined;
        if (test === undefined) this.fail('invalid character class range', posix[0]);
        tests.push(posix[1] === '^' ? not(test as CharTest) : (test as CharTest));
        this.i += posix[0].length;
        continue;
      }
      const escaped = this.src[this.i] === '\\' ? this.classEscape() : undefined;
      if (escaped !== undefined) {
        tests.push(escaped);
        continue;
      }
      const rangeStart = this.i;
      const lo = this.classChar(whole);
      let hi = lo;
      if (this.src[this.i] === '-' && this.i + 1 < this.src.length && this.src[this.i + 1] !== ']') {
        this.i++;
        hi = this.classChar(whole);
        if (hi < lo) this.fail('invalid character class range', this.src.slice(rangeStart, this.i));
      }
      ranges.push(lo, hi);
    }
    this.i++;
    const inClass = inRanges(...ranges);
    const any: CharTest = (c) => inClass(c) || tests.some((t) => t(c));
    const test = flags.fold ? folded(any) : any;
    return { kind: 'char', test: negate ? not(test) : test };
  }

  private classChar(whole: string): number {
    const c = this.src.codePointAt(this.i);
    if (c === undefined) return this.fail('missing closing ]', whole);
    if (c === 0x5c) return this.escape();
    this.i += c > 0xffff ? 2 : 1;
    return c;
  }
}

function literal(cp: number, flags: Flags): Re {
  return { kind: 'char', test: flags.fold ? folded((c) => c === cp) : (c) => c === cp };
}

const unicodeClasses = new Map<string, CharTest | undefined>();

/** A Unicode category or script by Go's name, tested through the engine's own tables (one character, no backtracking). */
function unicodeClass(name: string): CharTest | undefined {
  if (name === 'Any') return () => true;
  if (!/^[A-Za-z_]+$/.test(name)) return undefined;
  if (!unicodeClasses.has(name)) {
    let test: CharTest | undefined;
    try {
      const re = new RegExp(`^\\p{${CATEGORIES.has(name) ? 'gc' : 'sc'}=${name}}$`, 'u');
      test = (c) => re.test(String.fromCodePoint(c));
    } catch {
      test = undefined;
    }
    unicodeClasses.set(name, test);
  }
  return unicodeClasses.get(name);
}

/** Go's repeatIsValid: counted repetitions nested inside each other may multiply to `n` at most. */
function repeatIsValid(re: Re, n: number): boolean {
  if (re.kind === 'repeat') {
    const m = re.max === -1 ? re.min : re.max;
    if (m > n) return false;
    if (m > 0) n = Math.floor(n / m);
    return repeatIsValid(re.sub, n);
  }
  return re.kind === 'cat' || re.kind === 'alt' ? re.subs.every((s) => repeatIsValid(s, n)) : true;
}

type Inst =
  | { readonly op: 'match' }
  | { readonly op: 'char'; readonly test: CharTest; readonly next: number }
  | { readonly op: 'assert'; readonly at: Assertion; readonly next: number }
  | { readonly op: 'split'; x: number; readonly y: number };

/** Emits the program for `re` followed by `next` (continuation style), returning its entry. */
function compileRe(re: Re, next: number, emit: (inst: Inst) => number, insts: Inst[]): number {
  switch (re.kind) {
    case 'char':
      return emit({ op: 'char', test: re.test, next });
    case 'assert':
      return emit({ op: 'assert', at: re.at, next });
    case 'cat':
      return re.subs.reduceRight((n, sub) => compileRe(sub, n, emit, insts), next);
    case 'alt':
      return re.subs
        .map((sub) => compileRe(sub, next, emit, insts))
        .reduceRight((rest, entry) => emit({ op: 'split', x: entry, y: rest }));
    case 'repeat': {
      let tail = next;
      if (re.max === -1) {
        const loop = emit({ op: 'split', x: -1, y: next });
        (insts[loop] as { x: number }).x = compileRe(re.sub, loop, emit, insts);
        tail = loop;
      } else {
        // x{n,m}: n copies, then m-n nested optional ones: xx(x(x)?)?
        for (let k = re.min; k < re.max; k++) tail = emit({ op: 'split', x: compileRe(re.sub, tail, emit, insts), y: next });
      }
      for (let k = 0; k < re.min; k++) tail = compileRe(re.sub, tail, emit, insts);
      return tail;
    }
  }
}

/** Does the program match anywhere in `text`? Thompson's simulation: one pass, each state at most once per position. */
function run(insts: readonly Inst[], start: number, text: string): boolean {
  const seen = new Uint32Array(insts.length);
  let pending: number[] = [];
  let prev = -1;
  for (let i = 0, gen = 1; ; gen++) {
    const cur = text.codePointAt(i) ?? -1;
    const chars: number[] = [];
    const stack = pending;
    stack.push(start);
    while (stack.length > 0) {
      const pc = stack.pop() as number;
      if (seen[pc] === gen) continue;
      seen[pc] = gen;
      const inst = insts[pc] as Inst;
      if (inst.op === 'match') return true;
      if (inst.op === 'char') chars.push(pc);
      else if (inst.op === 'split') stack.push(inst.y, inst.x);
      else if (holds(inst.at, prev, cur, i)) stack.push(inst.next);
    }
    if (cur === -1) return false;
    pending = [];
    for (const pc of chars) {
      const inst = insts[pc] as Inst & { op: 'char' };
      if (inst.test(cur)) pending.push(inst.next);
    }
    prev = cur;
    i += cur > 0xffff ? 2 : 1;
  }
}

function holds(at: Assertion, prev: number, cur: number, i: number): boolean {
  switch (at) {
    case 'text-start':
      return i === 0;
    case 'text-end':
      return cur === -1;
    case 'line-start':
      return prev === -1 || prev === 10;
    case 'line-end':
      return cur === -1 || cur === 10;
    case 'word':
      return isWordChar(prev) !== isWordChar(cur);
    case 'not-word':
      return isWordChar(prev) === isWordChar(cur);
  }
}
