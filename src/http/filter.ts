/**
 * Consul's `?filter=` expressions (HashiCorp go-bexpr), compiled against the selectable fields of
 * one endpoint's element into a predicate over that element's JSON.
 *
 * Theory of operation. Consul pins go-bexpr v0.1.2 (its go.mod), the version that checks an
 * expression against the Go type of the element before running it; we follow that version, with a
 * FilterSchema standing in for the Go type. Three passes, each refusing with a FilterError whose
 * text is bexpr's:
 *  1. Parse: a PEG parser for v0.1.2's grammar.peg, rule for rule and alternative for alternative,
 *     reporting errors as its pigeon-generated parser does ("1:9 (8): rule "number": Invalid number
 *     literal", or the farthest position reached and what was expected there).
 *  2. Check (validate.go): each selector is walked through the schema, an unknown part refused;
 *     the operator must suit the type reached (field_config.go); the value is coerced to that type
 *     as strconv would (coerce.go); a `matches` pattern is compiled.
 *  3. Evaluate (evaluate.go): the selector walks the JSON. A list met before the selector ends is an
 *     implicit "any" over its elements, each tested with the operator (so `Checks.Status !=
 *     passing` is "some check is not passing"); a missing map key answers by operator; a value
 *     absent, null or of the wrong type reads as its type's zero value, which is what Consul's Go
 *     structs hold for JSON null.
 *
 * `matches` is RE2 (Go's regexp/syntax with its Perl flags), run in linear time by src/registry/re2.ts.
 */
import { InvalidOptionError } from '../runtime/index.js';
import { goQuote, parseGoBool, parseGoInt, unquote } from './go-literals.js';
import { compileRe2 } from '../registry/re2.js';

/** What a selector can reach: a scalar, a list, a map with string keys, or an object's fields. */
export type FilterType =
  | 'string'
  /** An integer, as Go's `int`: literals are read by strconv.ParseInt(s, 0, 64). */
  | 'number'
  | 'bool'
  | { readonly list: FilterType }
  | { readonly map: FilterType }
  | { readonly object: FilterSchema };

/** The selectable fields of one endpoint's element, by their (case-sensitive) JSON key. */
export interface FilterSchema {
  readonly [field: string]: FilterType;
}

/** A filter refused: it does not parse, names a field the element lacks, or misuses one. */
export class FilterError extends InvalidOptionError {
  /** bexpr's own words, which Consul answers (400) after "Failed to create boolean expression evaluator: ". */
  readonly reason: string;
  constructor(reason: string) {
    super('filter', `Failed to create boolean expression evaluator: ${reason}`);
    this.reason = reason;
  }
}

/** bexpr sets no limit; ours keeps one hostile query string small (UTF-8 bytes). */
const FILTER_BYTES_MAX = 4096;
/** Parentheses nesting; each level is a few stack frames in the parser and the predicate. */
const FILTER_DEPTH_MAX = 32;
/** NFA instructions all of one filter's patterns may compile to: matching costs this × text length at most. */
const REGEXP_INSTS_MAX = 2000;

/**
 * Compiles a filter for elements shaped by `schema`, or throws a FilterError. The predicate never
 * throws, whatever JSON it is given. An empty expression keeps everything, as bexpr's CreateFilter.
 */
export function compileFilter(expression: string, schema: FilterSchema): (value: unknown) => boolean {
  if (expression === '') return () => true;
  const bytes = Buffer.byteLength(expression, 'utf8');
  if (bytes > FILTER_BYTES_MAX) throw new FilterError(`expression is ${bytes} bytes, the limit is ${FILTER_BYTES_MAX}`);
  const ast = new Parser(expression).parse();
  return build(ast, schema, { insts: REGEXP_INSTS_MAX });
}

// ---------------------------------------------------------------- parsing (grammar.peg)

type Op = 'Equal' | 'Not Equal' | 'In' | 'Not In' | 'Is Empty' | 'Is Not Empty' | 'Matches' | 'Not Matches';
interface Match {
  readonly kind: 'match';
  readonly selector: readonly string[];
  readonly op: Op;
  readonly value: string | undefined;
}
type Ast = { readonly kind: 'and' | 'or'; readonly terms: readonly Ast[] } | { readonly kind: 'not'; readonly term: Ast } | Match;

/** An operator's tokens: `_` is required whitespace, `_?` optional, anything else a literal. */
type Tokens = readonly string[];
const VALUE_OPS: readonly (readonly [Op, Tokens])[] = [
  ['Equal', ['_?', '==', '_?']],
  ['Not Equal', ['_?', '!=', '_?']],
  ['In', ['_', 'contains', '_']],
  ['Not In', ['_', 'not', '_', 'contains', '_']],
  ['Matches', ['_', 'matches', '_']],
  ['Not Matches', ['_', 'not', '_', 'matches', '_']],
];
const EMPTY_OPS: readonly (readonly [Op, Tokens])[] = [
  ['Is Empty', ['_', 'is', '_', 'empty']],
  ['Is Not Empty', ['_', 'is', '_', 'not', '_', 'empty']],
];
const IN_OPS: readonly (readonly [Op, Tokens])[] = [
  ['In', ['_', 'in', '_']],
  ['Not In', ['_', 'not', '_', 'in', '_']],
];

/**
 * A recursive-descent rendering of the PEG: each method is a rule, tries its alternatives in the
 * grammar's order and restores the position when it fails. Like pigeon it remembers the farthest
 * position where a terminal failed and the terminals tried there, for "no match found"; its
 * error-raising alternatives (`&{ return false, errors.New(...) }`) throw at once, which is the
 * first of the errors pigeon would collect.
 */
class Parser {
  private pos = 0;
  private depth = 0;
  private failPos = 0;
  private readonly expected = new Set<string>();

  constructor(private readonly src: string) {}

  /** Input <- _? OrExpression _? EOF (its parenthesized alternative parses the same inputs). */
  parse(): Ast {
    this.ws0();
    const ast = this.or();
    if (ast !== undefined && this.ws0() && this.eof()) return ast;
    const wanted = [...this.expected].filter((e) => e !== 'EOF').sort();
    if (this.expected.has('EOF')) wanted.push('EOF');
    const list = wanted.length > 1 ? `${wanted.slice(0, -1).join(', ')} or ${wanted.at(-1)}` : (wanted[0] ?? '');
    throw new FilterError(`${this.where(this.failPos)}: no match found, expected: ${list}`);
  }

  /** OrExpression <- AndExpression _ "or" _ OrExpression / AndExpression, flattened. */
  private or(): Ast | undefined {
    return this.chain('or', () => this.and());
  }

  /** AndExpression <- NotExpression _ "and" _ AndExpression / NotExpression, flattened. */
  private and(): Ast | undefined {
    return this.chain('and', () => this.not());
  }

  private chain(word: 'and' | 'or', term: () => Ast | undefined): Ast | undefined {
    const first = term();
    if (first === undefined) return undefined;
    const terms = [first];
    for (;;) {
      const at = this.pos;
      const next = this.ws1() && this.lit(word) && this.ws1() ? term() : undefined;
      if (next === undefined) {
        this.pos = at;
        break;
      }
      terms.push(next);
    }
    return terms.length === 1 ? first : { kind: word, terms };
  }

  /**
   * NotExpression <- "not" _ NotExpression / ParenthesizedExpression, without recursion: take every
   * leading `not `, then back off one at a time (`not in Tags` is a match on the value "not").
   * bexpr drops double negations; so do we.
   */
  private not(): Ast | undefined {
    const starts: number[] = [];
    for (;;) {
      const at = this.pos;
      if (!(this.lit('not') && this.ws1())) {
        this.pos = at;
        break;
      }
      starts.push(at);
    }
    let nots = starts.length;
    let term = this.paren();
    while (term === undefined && nots > 0) {
      nots--;
      this.pos = starts[nots] as number;
      term = this.paren();
    }
    if (term === undefined) return undefined;
    return nots % 2 === 1 ? { kind: 'not', term } : term;
  }

  /** ParenthesizedExpression <- "(" _? OrExpression _? ")" / MatchExpression / "(" _? OrExpression _? !")" (error). */
  private paren(): Ast | undefined {
    const at = this.pos;
    if (this.lit('(')) {
      if (++this.depth > FILTER_DEPTH_MAX) throw new FilterError(`${this.where(at)}: parentheses nest deeper than ${FILTER_DEPTH_MAX}`);
      this.ws0();
      const inner = this.or();
      this.depth--;
      if (inner !== undefined) {
        this.ws0();
        if (this.lit(')')) return inner;
        throw this.error('grouping', 'Unmatched parentheses');
      }
      this.pos = at;
    }
    return this.match();
  }

  /** MatchExpression <- Selector op Value / Selector (is [not] empty) / Value ([not] in) Selector. */
  private match(): Match | undefined {
    const at = this.pos;
    const selector = this.selector();
    if (selector !== undefined) {
      const end = this.pos;
      const op = this.operator(VALUE_OPS);
      const value = op === undefined ? undefined : this.value();
      if (op !== undefined && value !== undefined) return { kind: 'match', selector, op, value };
      this.pos = end;
      const empty = this.operator(EMPTY_OPS);
      if (empty !== undefined) return { kind: 'match', selector, op: empty, value: undefined };
      this.pos = at;
    }
    const value = this.value();
    const op = value === undefined ? undefined : this.operator(IN_OPS);
    if (value !== undefined && op !== undefined) {
      const target = this.selector();
      if (target === undefined) throw this.error('match', 'Invalid selector');
      return { kind: 'match', selector: target, op, value };
    }
    this.pos = at;
    return undefined;
  }

  private operator(ops: readonly (readonly [Op, Tokens])[]): Op | undefined {
    for (const [op, tokens] of ops) {
      const at = this.pos;
      if (tokens.every((t) => (t === '_' ? this.ws1() : t === '_?' ? this.ws0() : this.lit(t)))) return op;
      this.pos = at;
    }
    return undefined;
  }

  /** Selector <- Identifier ("." Identifier / IndexExpression)* */
  private selector(): string[] | undefined {
    const first = this.identifier();
    if (first === undefined) return undefined;
    const path = [first];
    for (;;) {
      const at = this.pos;
      const name = this.lit('.') ? this.identifier() : undefined;
      if (name !== undefined) {
        path.push(name);
        continue;
      }
      this.pos = at;
      const key = this.index();
      if (key === undefined) return path;
      path.push(key);
    }
  }

  /** Identifier <- [a-zA-Z] [a-zA-Z0-9_]* */
  private identifier(): string | undefined {
    const at = this.pos;
    if (!this.cls(/[a-zA-Z]/, '[a-zA-Z]')) return undefined;
    while (this.cls(/[a-zA-Z0-9_]/, '[a-zA-Z0-9_]'));
    return this.src.slice(at, this.pos);
  }

  /** IndexExpression <- "[" _? StringLiteral _? "]", or an "Invalid index" / "Unclosed index expression" error. */
  private index(): string | undefined {
    if (!this.lit('[')) return undefined;
    this.ws0();
    const at = this.pos;
    const key = this.string();
    if (key === undefined) throw this.error('index', 'Invalid index', at);
    this.ws0();
    if (this.lit(']')) return key;
    throw this.error('index', 'Unclosed index expression');
  }

  /** Value <- Selector (its parts joined by ".") / NumberLiteral / StringLiteral: the raw text, typed later. */
  private value(): string | undefined {
    const selector = this.selector();
    if (selector !== undefined) return selector.join('.');
    return this.number() ?? this.string();
  }

  /** NumberLiteral <- "-"? IntegerOrFloat &AfterNumbers, where AfterNumbers <- &(_ / EOF / ")"). */
  private number(): string | undefined {
    const at = this.pos;
    this.lit('-');
    if (!this.integerOrFloat()) {
      this.pos = at;
      return undefined;
    }
    const end = this.pos;
    const ended = this.ws1() || this.eof() || this.lit(')');
    this.pos = end;
    if (!ended) throw this.error('number', 'Invalid number literal');
    return this.src.slice(at, end);
  }

  /** IntegerOrFloat <- ("0" / [1-9][0-9]*) ("." [0-9]+)? */
  private integerOrFloat(): boolean {
    if (!this.lit('0')) {
      if (!this.cls(/[1-9]/, '[1-9]')) return false;
      while (this.cls(/[0-9]/, '[0-9]'));
    }
    const at = this.pos;
    if (this.lit('.') && this.cls(/[0-9]/, '[0-9]')) while (this.cls(/[0-9]/, '[0-9]'));
    else this.pos = at;
    return true;
  }

  /**
   * StringLiteral <- '`' (!'`' .)* '`' / '"' (!'"' .)* '"', then strconv.Unquote. A double-quoted
   * string ends at the first `"`, escaped or not: that is the grammar's, so `\"` cannot be written.
   */
  private string(): string | undefined {
    const at = this.pos;
    const quote = this.src[at];
    if (quote !== '"' && quote !== '`') {
      this.expect('"`"');
      this.expect('"\\""');
      return undefined;
    }
    const close = this.src.indexOf(quote, at + 1);
    if (close === -1) {
      this.pos = this.src.length;
      throw this.error('string', 'Unterminated string literal');
    }
    this.pos = close + 1;
    const body = this.src.slice(at + 1, close);
    const text = quote === '`' ? body.replaceAll('\r', '') : unquote(body);
    if (text === undefined) throw this.error('string', 'invalid syntax', at);
    return text;
  }

  /** `_` <- [ \t\r\n]+ */
  private ws1(): boolean {
    if (!this.space()) return false;
    while (this.space());
    return true;
  }

  /** `_?` */
  private ws0(): true {
    while (this.space());
    return true;
  }

  private space(): boolean {
    return this.cls(/[ \t\r\n]/, '[ \\t\\r\\n]');
  }

  private eof(): boolean {
    return this.pos === this.src.length || this.expect('EOF');
  }

  private lit(s: string): boolean {
    if (!this.src.startsWith(s, this.pos)) return this.expect(JSON.stringify(s));
    this.pos += s.length;
    return true;
  }

  /** One ASCII character of a class; `name` is how pigeon prints the class. */
  private cls(re: RegExp, name: string): boolean {
    const c = this.src[this.pos];
    if (c === undefined || !re.test(c)) return this.expect(name);
    this.pos++;
    return true;
  }

  private expect(what: string): false {
    if (this.pos > this.failPos) {
      this.failPos = this.pos;
      this.expected.clear();
    }
    if (this.pos === this.failPos) this.expected.add(what);
    return false;
  }

  private error(rule: string, message: string, at = this.pos): FilterError {
    return new FilterError(`${this.where(at)}: rule "${rule}": ${message}`);
  }

  /** pigeon's position: line:column (byte offset), columns counted in runes; a newline is column 0 of the next line. */
  private where(at: number): string {
    let line = 1;
    let col = 0;
    for (let i = 0; ; ) {
      col++;
      const cp = this.src.codePointAt(i);
      if (cp === 10) {
        line++;
        col = 0;
      }
      if (i >= at || cp === undefined) break;
      i += cp > 0xffff ? 2 : 1;
    }
    return `${line}:${col} (${Buffer.byteLength(this.src.slice(0, at), 'utf8')})`;
  }
}

// ---------------------------------------------------------------- checking and evaluating (validate.go, evaluate.go)

type Pred = (value: unknown) => boolean;
interface Budget {
  insts: number;
}

/** A selector resolved against the schema: read a field, read a map key, or go through each element of a list. */
type Step = { readonly kind: 'field' | 'key'; readonly name: string } | { readonly kind: 'each' };

function build(ast: Ast, schema: FilterSchema, budget: Budget): Pred {
  switch (ast.kind) {
    case 'and': {
      const terms = ast.terms.map((t) => build(t, schema, budget));
      return (v) => terms.every((p) => p(v));
    }
    case 'or': {
      const terms = ast.terms.map((t) => build(t, schema, budget));
      return (v) => terms.some((p) => p(v));
    }
    case 'not': {
      const term = build(ast.term, schema, budget);
      return (v) => !term(v);
    }
    case 'match':
      return buildMatch(ast, schema, budget);
  }
}

const STRING_OPS: readonly Op[] = ['Equal', 'Not Equal', 'In', 'Not In', 'Matches', 'Not Matches'];
const SCALAR_OPS: readonly Op[] = ['Equal', 'Not Equal'];
const SCALAR_LIST_OPS: readonly Op[] = ['In', 'Not In', 'Is Empty', 'Is Not Empty'];
const LIST_OPS: readonly Op[] = ['Is Empty', 'Is Not Empty'];
const MAP_OPS: readonly Op[] = ['Is Empty', 'Is Not Empty', 'In', 'Not In'];

/** The operators a type supports (field_config.go): none on an object, and no `is empty` on a string in v0.1.2. */
function opsOf(type: FilterType): readonly Op[] {
  if (type === 'string') return STRING_OPS;
  if (typeof type === 'string') return SCALAR_OPS;
  if ('list' in type) return typeof type.list === 'string' ? SCALAR_LIST_OPS : LIST_OPS;
  if ('map' in type) return MAP_OPS;
  return [];
}

/** What a missing map key answers (go-bexpr's NotPresentDisposition): nothing equals, contains or matches it, and it is empty. */
const ABSENT_IS_TRUE: ReadonlySet<Op> = new Set<Op>(['Not Equal', 'Not In', 'Is Empty', 'Not Matches']);

function buildMatch(m: Match, schema: FilterSchema, budget: Budget): Pred {
  const name = goQuote(m.selector.join('.'));
  const steps: Step[] = [];
  let type: FilterType = { object: schema };
  for (const [i, part] of m.selector.entries()) {
    // Before the selector ends, a list stands for each of its elements (implicit "any"); at its end it is the operand.
    while (typeof type !== 'string' && 'list' in type) {
      steps.push({ kind: 'each' });
      type = type.list;
    }
    if (typeof type !== 'string' && 'map' in type) {
      steps.push({ kind: 'key', name: part });
      type = type.map;
    } else if (typeof type !== 'string' && 'object' in type && Object.hasOwn(type.object, part)) {
      steps.push({ kind: 'field', name: part });
      type = type.object[part] as FilterType;
    } else {
      throw new FilterError(`Selector ${goQuote(m.selector.slice(0, i + 1).join('.'))} is not valid`);
    }
  }
  if (!opsOf(type).includes(m.op)) throw new FilterError(`Invalid match operator ${goQuote(m.op)} for selector ${name}`);
  const positive = operand(type, m, name, budget);
  const test: Pred = m.op.startsWith('Not ') || m.op === 'Is Not Empty' ? (v) => !positive(v) : positive;
  const absent = ABSENT_IS_TRUE.has(m.op);
  const walk = (value: unknown, i: number): boolean => {
    const step = steps[i];
    if (step === undefined) return test(value);
    if (step.kind === 'each') return asList(value).some((item) => walk(item, i + 1));
    const fields = asRecord(value);
    if (Object.hasOwn(fields, step.name)) return walk(fields[step.name], i + 1);
    return step.kind === 'key' ? absent : walk(undefined, i + 1);
  };
  return (value) => walk(value, 0);
}

/** The un-negated test of the operator on the value the selector reached, its literal coerced now. */
function operand(type: FilterType, m: Match, name: string, budget: Budget): Pred {
  const raw = m.value ?? '';
  if (m.op === 'Is Empty' || m.op === 'Is Not Empty') {
    return typeof type !== 'string' && 'list' in type ? (v) => asList(v).length === 0 : (v) => Object.keys(asRecord(v)).length === 0;
  }
  if (m.op === 'Matches' || m.op === 'Not Matches') {
    const matches = compileRegexp(raw, budget);
    return (v) => matches(asString(v));
  }
  if (m.op === 'Equal' || m.op === 'Not Equal') return equals(type as 'string' | 'number' | 'bool', raw, name);
  if (type === 'string') return (v) => asString(v).includes(raw);
  if (typeof type !== 'string' && 'list' in type) {
    const item = equals(type.list as 'string' | 'number' | 'bool', raw, name);
    return (v) => asList(v).some(item);
  }
  return (v) => Object.hasOwn(asRecord(v), raw);
}

function equals(type: 'string' | 'number' | 'bool', raw: string, name: string): Pred {
  const coerced = type === 'string' ? raw : type === 'number' ? parseGoInt(raw) : parseGoBool(raw);
  if (type !== 'string' && typeof coerced === 'string') {
    throw new FilterError(`Failed to coerce value ${goQuote(raw)} for selector ${name}: ${coerced}`);
  }
  if (type === 'number') return (v) => asInt(v) === coerced;
  if (type === 'bool') return (v) => (v === true) === coerced;
  return (v) => asString(v) === coerced;
}

const NO_FIELDS: Readonly<Record<string, unknown>> = Object.freeze({});
const asString = (v: unknown): string => (typeof v === 'string' ? v : '');
const asInt = (v: unknown): bigint => (typeof v === 'number' && Number.isInteger(v) ? BigInt(v) : 0n);
const asList = (v: unknown): readonly unknown[] => (Array.isArray(v) ? v : []);
const asRecord = (v: unknown): Readonly<Record<string, unknown>> =>
  typeof v === 'object' && v !== null && !Array.isArray(v) ? (v as Record<string, unknown>) : NO_FIELDS;

// ---------------------------------------------------------------- regular expressions (src/registry/re2.ts)

function compileRegexp(pattern: string, budget: Budget): (text: string) => boolean {
  return compileRe2(pattern, budget, (code, expr) => {
    throw new FilterError(`Failed to compile regular expression ${goQuote(pattern)}: error parsing regexp: ${code}: \`${expr}\``);
  });
}

// ---------------------------------------------------------------- Consul's elements
// The selectors Consul's field configurations allow (agent/structs/structs_filtering_test.go, and
// the Filtering tables of the catalog, health and agent API docs), keyed as Consul's JSON is.

const STRING_MAP: FilterType = { map: 'string' };
const STRINGS: FilterType = { list: 'string' };
const WEIGHTS: FilterType = { object: { Passing: 'number', Warning: 'number' } };
/** map[string]ServiceAddress: the struct has no JSON tags, so its keys are Address and Port. */
const SERVICE_ADDRESSES: FilterType = { map: { object: { Address: 'string', Port: 'number' } } };

const node: FilterSchema = {
  ID: 'string', Node: 'string', Address: 'string', Datacenter: 'string', TaggedAddresses: STRING_MAP, Meta: STRING_MAP,
};
/** No `Datacenter`: Consul's api.AgentService tags it `bexpr:"-"`, so Consul refuses that selector. */
const agentService: FilterSchema = {
  Kind: 'string', ID: 'string', Service: 'string', Tags: STRINGS, Meta: STRING_MAP, Port: 'number', Address: 'string',
  TaggedAddresses: SERVICE_ADDRESSES, Weights: WEIGHTS, EnableTagOverride: 'bool',
};
const check: FilterSchema = {
  Node: 'string', CheckID: 'string', Name: 'string', Status: 'string', Notes: 'string', Output: 'string',
  ServiceID: 'string', ServiceName: 'string', ServiceTags: STRINGS, Type: 'string',
};

/** The elements Consul's filtering endpoints return, by the shape of each. */
export const SCHEMAS = {
  /** /v1/catalog/nodes, and `Node` of a health entry. */
  node,
  /** /v1/agent/services, /v1/catalog/node/:node's `Services`, and `Service` of a health entry. */
  agentService,
  /** /v1/health/checks/:service, /v1/health/node/:node, /v1/health/state/:state, /v1/agent/checks. */
  check,
  /** /v1/catalog/service/:service. */
  catalogService: {
    ID: 'string', Node: 'string', Address: 'string', Datacenter: 'string', TaggedAddresses: STRING_MAP, NodeMeta: STRING_MAP,
    ServiceKind: 'string', ServiceID: 'string', ServiceName: 'string', ServiceTags: STRINGS, ServiceAddress: 'string',
    ServiceTaggedAddresses: SERVICE_ADDRESSES, ServiceWeights: WEIGHTS, ServiceMeta: STRING_MAP, ServicePort: 'number',
    ServiceEnableTagOverride: 'bool',
  },
  /** /v1/health/service/:service: `Checks.Status == passing` is "some check passes". */
  serviceEntry: { Node: { object: node }, Service: { object: agentService }, Checks: { list: { object: check } } },
} as const satisfies Readonly<Record<string, FilterSchema>>;
