/**
 * Consul's `?filter=` language (src/http/filter.ts). The examples come from Consul's docs
 * (website/content/api-docs/features/filtering.mdx, catalog.mdx, health.mdx, agent/service.mdx)
 * and from go-bexpr v0.1.2's own tests (grammar_test.go, evaluate_test.go), the version Consul
 * pins. Each test names which elements a filter keeps and which it drops. The properties at the end
 * are fast-check's, which prints the seed and the shrunk counterexample of any failure; rerun one
 * with `fc.assert(..., { seed, path })`.
 */
import fc from 'fast-check';
import { describe, expect, test } from 'vitest';
import { compileFilter, FilterError, type FilterSchema, SCHEMAS } from '../src/http/filter.js';
import { InvalidOptionError } from '../src/runtime/index.js';

/** The keys of the elements `expression` keeps. */
function kept(expression: string, schema: FilterSchema, elements: Record<string, unknown>): string[] {
  const keep = compileFilter(expression, schema);
  return Object.entries(elements)
    .filter(([, e]) => keep(e))
    .map(([k]) => k);
}

/** bexpr's words for why `expression` is refused; fails the test if it is accepted or throws anything else. */
function refusal(expression: string, schema: FilterSchema = SCHEMAS.check): string {
  try {
    compileFilter(expression, schema);
  } catch (e) {
    if (e instanceof FilterError) return e.reason;
    throw e;
  }
  throw new Error(`accepted: ${expression}`);
}

// filtering.mdx, "Filtering Examples / Agent API": the unfiltered /v1/agent/services response.
const AGENT_SERVICES = {
  redis1: {
    ID: 'redis1', Service: 'redis', Tags: ['primary', 'production'], Meta: { env: 'production', foo: 'bar' }, Port: 1234,
    Address: '', Weights: { Passing: 1, Warning: 1 }, EnableTagOverride: false,
  },
  redis2: {
    ID: 'redis2', Service: 'redis', Tags: ['secondary', 'production'], Meta: { env: 'production', foo: 'bar' }, Port: 1235,
    Address: '', Weights: { Passing: 1, Warning: 1 }, EnableTagOverride: false,
  },
  redis3: {
    ID: 'redis3', Service: 'redis', Tags: ['primary', 'qa'], Meta: { env: 'qa' }, Port: 1234,
    Address: '', Weights: { Passing: 1, Warning: 1 }, EnableTagOverride: false,
  },
};

// filtering.mdx, "Filtering Examples / Catalog API": /v1/catalog/service/api-internal, by node.
const CATALOG_ENTRY = {
  ID: 'b4f64e8c-5c7d-11e9-bf68-8c8590bd0966', Node: 'node-1', Address: '198.18.0.1', Datacenter: 'dc1', TaggedAddresses: null,
  NodeMeta: { agent: 'true', arch: 'i386', os: 'darwin' }, ServiceKind: '', ServiceID: 'api-internal', ServiceName: 'api-internal',
  ServiceTags: ['tag'], ServiceAddress: '', ServiceWeights: { Passing: 1, Warning: 1 }, ServiceMeta: { environment: 'qa' },
  ServicePort: 9090, ServiceEnableTagOverride: false, ServiceProxy: {}, ServiceConnect: {}, CreateIndex: 30, ModifyIndex: 30,
};
const CATALOG_SERVICE = {
  'node-1': CATALOG_ENTRY,
  'node-2': {
    ...CATALOG_ENTRY, ID: 'b4faf93a-5c7d-11e9-840d-8c8590bd0966', Node: 'node-2', Address: '198.18.0.2',
    NodeMeta: { arch: 'arm', os: 'linux' }, ServiceTags: ['test', 'tag'], ServiceMeta: { environment: 'production' },
  },
  'node-4': {
    ...CATALOG_ENTRY, ID: 'b4fbe7f4-5c7d-11e9-ac82-8c8590bd0966', Node: 'node-4', Address: '198.18.0.4',
    NodeMeta: { arch: 'i386', os: 'freebsd' }, ServiceTags: [], ServiceMeta: { environment: 'qa' },
  },
};

// filtering.mdx, "Filtering Examples / Health API": /v1/health/node/node-1, by CheckID.
const NODE_CHECKS = {
  'node-health': {
    Node: 'node-1', CheckID: 'node-health', Name: 'Node level check', Status: 'critical', Notes: '', Output: '',
    ServiceID: '', ServiceName: '', ServiceTags: [], Definition: {}, CreateIndex: 13, ModifyIndex: 13,
  },
  'svc-web-health': {
    Node: 'node-1', CheckID: 'svc-web-health', Name: 'Service level check - web', Status: 'warning', Notes: '', Output: '',
    ServiceID: '', ServiceName: 'web', ServiceTags: [], Definition: {}, CreateIndex: 18, ModifyIndex: 18,
  },
};

describe("the examples of Consul's filtering doc", () => {
  test('Agent API: Meta.env == "qa" keeps redis3 only', () => {
    expect(kept('Meta.env == "qa"', SCHEMAS.agentService, AGENT_SERVICES)).toEqual(['redis3']);
  });

  test('Catalog API: NodeMeta.os == "linux" keeps node-2 only', () => {
    expect(kept('NodeMeta.os == "linux"', SCHEMAS.catalogService, CATALOG_SERVICE)).toEqual(['node-2']);
  });

  test('Health API: ServiceName != "" keeps the service-level check only', () => {
    expect(kept('ServiceName != ""', SCHEMAS.check, NODE_CHECKS)).toEqual(['svc-web-health']);
  });

  test('Selectors: ServiceMeta.foo and ServiceMeta["foo"] select the same key', () => {
    for (const e of ['ServiceMeta.environment == qa', 'ServiceMeta["environment"] == qa', 'ServiceMeta[ `environment` ] == qa']) {
      expect(kept(e, SCHEMAS.catalogService, CATALOG_SERVICE), e).toEqual(['node-1', 'node-4']);
    }
    // The index form reaches keys that are no identifier.
    const odd = { a: { ServiceMeta: { 'k8s.io/app': 'web' } }, b: { ServiceMeta: { app: 'web' } } };
    expect(kept('ServiceMeta["k8s.io/app"] == web', SCHEMAS.catalogService, odd)).toEqual(['a']);
  });

  test('Values: double quotes expand escapes, backticks are raw', () => {
    const elements = { newline: { ServiceMeta: { v: 'a\nb' } }, backslash: { ServiceMeta: { v: 'a\\nb' } } };
    expect(kept('ServiceMeta.v == "a\\nb"', SCHEMAS.catalogService, elements)).toEqual(['newline']);
    expect(kept('ServiceMeta.v == `a\\nb`', SCHEMAS.catalogService, elements)).toEqual(['backslash']);
    // A bare selector or number is a value too (its text).
    expect(kept('ServiceMeta.environment == production', SCHEMAS.catalogService, CATALOG_SERVICE)).toEqual(['node-2']);
  });

  test('Matching operators: each form of the doc on the catalog entries', () => {
    const cases: [string, string[]][] = [
      ['ServiceName == "api-internal"', ['node-1', 'node-2', 'node-4']],
      ['Node != "node-2"', ['node-1', 'node-4']],
      ['ServiceTags is empty', ['node-4']],
      ['ServiceTags is not empty', ['node-1', 'node-2']],
      ['"test" in ServiceTags', ['node-2']],
      ['"test" not in ServiceTags', ['node-1', 'node-4']],
      ['ServiceTags contains "tag"', ['node-1', 'node-2']],
      ['ServiceTags not contains "tag"', ['node-4']],
      ['Address matches "\\\\.0\\\\.[12]$"', ['node-1', 'node-2']],
      ['Address not matches "\\\\.0\\\\.[12]$"', ['node-4']],
      ['"agent" in NodeMeta', ['node-1']],
      ['NodeMeta.arch contains "386"', ['node-1', 'node-4']],
      ['"386" not in NodeMeta.arch', ['node-2']],
    ];
    for (const [e, want] of cases) expect(kept(e, SCHEMAS.catalogService, CATALOG_SERVICE), e).toEqual(want);
  });

  test('precedence: "E1 and not E2 or E3" is "(E1 and (not E2)) or E3"', () => {
    const schema: FilterSchema = { A: 'bool', B: 'bool', C: 'bool' };
    const all: Record<string, { A: boolean; B: boolean; C: boolean }> = {};
    for (let n = 0; n < 8; n++) all[`${n}`] = { A: (n & 4) !== 0, B: (n & 2) !== 0, C: (n & 1) !== 0 };
    const want = Object.keys(all).filter((k) => {
      const { A, B, C } = all[k] as { A: boolean; B: boolean; C: boolean };
      return (A && !B) || C;
    });
    expect(kept('A == true and not B == true or C == true', schema, all)).toEqual(want);
    expect(kept('( A == true and (not B == true ) ) or C == true', schema, all)).toEqual(want);
    expect(kept('A == true and not (B == true or C == true)', schema, all)).toEqual(['4']);
  });

  test('an empty expression keeps everything, as bexpr.CreateFilter("")', () => {
    expect(kept('', SCHEMAS.check, NODE_CHECKS)).toEqual(['node-health', 'svc-web-health']);
  });
});

// health.mdx, "List Service Instances for Service": the sample entry, and variations on its checks.
const HEALTH_ENTRY = {
  Node: {
    ID: '40e4a748-2192-161a-0510-9bf59fe950b5', Node: 'foobar', Address: '10.1.10.12', Datacenter: 'dc1',
    TaggedAddresses: { lan: '10.1.10.12', wan: '10.1.10.12' }, Meta: { instance_type: 't2.medium' },
  },
  Service: {
    ID: 'redis', Service: 'redis', Tags: ['primary'], Address: '10.1.10.12',
    TaggedAddresses: { lan: { Address: '10.1.10.12', Port: 8000 }, wan: { Address: '198.18.1.2', Port: 80 } },
    Meta: { redis_version: '4.0' }, Port: 8000, Weights: { Passing: 10, Warning: 1 },
  },
  Checks: [
    { Node: 'foobar', CheckID: 'service:redis', Name: "Service 'redis' check", Status: 'passing', ServiceID: 'redis', ServiceName: 'redis', ServiceTags: ['primary'] },
    { Node: 'foobar', CheckID: 'serfHealth', Name: 'Serf Health Status', Status: 'passing', ServiceID: '', ServiceName: '', ServiceTags: [] },
  ],
};
const HEALTH = {
  passing: HEALTH_ENTRY,
  critical: { ...HEALTH_ENTRY, Checks: [HEALTH_ENTRY.Checks[1], { ...HEALTH_ENTRY.Checks[0], Status: 'critical' }] },
  unchecked: { ...HEALTH_ENTRY, Checks: [] },
};

describe('selectors through the health entry of /v1/health/service/:service', () => {
  test('the selectors health.mdx names in place of ?tag= and ?node-meta=: Service.Tags and Node.Meta', () => {
    const entries = { primary: HEALTH_ENTRY, replica: { ...HEALTH_ENTRY, Service: { ...HEALTH_ENTRY.Service, Tags: ['replica'] }, Node: { ...HEALTH_ENTRY.Node, Meta: {} } } };
    expect(kept('Service.Tags contains primary', SCHEMAS.serviceEntry, entries)).toEqual(['primary']);
    expect(kept('Node.Meta.instance_type == "t2.medium"', SCHEMAS.serviceEntry, entries)).toEqual(['primary']);
    expect(kept('Node.Meta is empty', SCHEMAS.serviceEntry, entries)).toEqual(['replica']);
  });

  test('a selector through the Checks list asks whether any check matches (evaluate.go: "implicitly ANY")', () => {
    expect(kept('Checks.Status == passing', SCHEMAS.serviceEntry, HEALTH)).toEqual(['passing', 'critical']);
    expect(kept('Checks.Status != passing', SCHEMAS.serviceEntry, HEALTH)).toEqual(['critical']);
    expect(kept('Checks.Status == critical', SCHEMAS.serviceEntry, HEALTH)).toEqual(['critical']);
    expect(kept('primary in Checks.ServiceTags', SCHEMAS.serviceEntry, HEALTH)).toEqual(['passing', 'critical']);
    expect(kept('Checks is empty', SCHEMAS.serviceEntry, HEALTH)).toEqual(['unchecked']);
  });

  test('"all checks pass" is Consul\'s own "not Checks.Status != passing" (agent/xds/endpoints.go), true of no checks', () => {
    expect(kept('not Checks.Status != passing', SCHEMAS.serviceEntry, HEALTH)).toEqual(['passing', 'unchecked']);
    expect(kept('Checks is not empty and not Checks.Status != passing', SCHEMAS.serviceEntry, HEALTH)).toEqual(['passing']);
  });

  test('Service.TaggedAddresses.<any>.Address and .Port (health.mdx Filtering table)', () => {
    expect(kept('Service.TaggedAddresses.wan.Address == "198.18.1.2"', SCHEMAS.serviceEntry, HEALTH)).toHaveLength(3);
    expect(kept('Service.TaggedAddresses.wan.Port == 443', SCHEMAS.serviceEntry, HEALTH)).toEqual([]);
    expect(kept('lan in Service.TaggedAddresses and Service.Weights.Passing == 10', SCHEMAS.serviceEntry, { a: HEALTH_ENTRY, b: {} })).toEqual(['a']);
  });
});

// catalog.mdx, "List Nodes": the sample response.
const NODES = {
  baz: { ID: '40e4a748-2192-161a-0510-9bf59fe950b5', Node: 'baz', Address: '10.1.10.11', Datacenter: 'dc1', TaggedAddresses: { lan: '10.1.10.11', wan: '10.1.10.11' }, Meta: { instance_type: 't2.medium' } },
  't2.320': { ID: '8f246b77-f3e1-ff88-5b48-8ec93abf3e05', Node: 't2.320', Address: '10.1.10.12', Datacenter: 'dc2', TaggedAddresses: { lan: '10.1.10.11', wan: '10.1.10.12' }, Meta: { instance_type: 't2.large' } },
};

describe('typed fields, coercion and zero values', () => {
  test('catalog nodes: Meta.<any>, TaggedAddresses.<any>, Datacenter (catalog.mdx List Nodes)', () => {
    expect(kept('Meta.instance_type == "t2.medium"', SCHEMAS.node, NODES)).toEqual(['baz']);
    expect(kept('TaggedAddresses.lan == "10.1.10.11"', SCHEMAS.node, NODES)).toEqual(['baz', 't2.320']);
    expect(kept('Datacenter == dc2 or TaggedAddresses.wan matches "\\\\.11$"', SCHEMAS.node, NODES)).toEqual(['baz', 't2.320']);
    expect(kept('Node == "t2.320"', SCHEMAS.node, NODES)).toEqual(['t2.320']);
  });

  test('an integer field takes its literal as strconv.ParseInt(s, 0, 64) does (coerce.go)', () => {
    for (const e of ['ServicePort == 9090', 'ServicePort == "0x2382"', 'ServicePort == "0o21602"', 'ServicePort == "9_090"', 'ServicePort == "+9090"']) {
      expect(kept(e, SCHEMAS.catalogService, CATALOG_SERVICE), e).toEqual(['node-1', 'node-2', 'node-4']);
    }
    const ports = { eight: { ServicePort: 8 }, ten: { ServicePort: 10 } };
    expect(kept('ServicePort == "010"', SCHEMAS.catalogService, ports)).toEqual(['eight']); // a leading 0 is octal
    expect(kept('ServicePort != 9090', SCHEMAS.catalogService, CATALOG_SERVICE)).toEqual([]);
  });

  test('a bool field takes its literal as strconv.ParseBool does', () => {
    const elements = { on: { ServiceEnableTagOverride: true }, off: { ServiceEnableTagOverride: false } };
    for (const word of ['true', 'True', 'TRUE', 't', 'T', '1']) expect(kept(`ServiceEnableTagOverride == ${word}`, SCHEMAS.catalogService, elements), word).toEqual(['on']);
    for (const word of ['false', 'f', '0']) expect(kept(`ServiceEnableTagOverride == ${word}`, SCHEMAS.catalogService, elements), word).toEqual(['off']);
  });

  test('a field absent, null or of the wrong type reads as its Go zero value', () => {
    const elements = { missing: {}, nulls: { ServicePort: null, ServiceTags: null, ServiceName: null, TaggedAddresses: null }, odd: { ServicePort: '9090', ServiceTags: 'tag' } };
    expect(kept('ServicePort == 0', SCHEMAS.catalogService, elements)).toEqual(['missing', 'nulls', 'odd']);
    expect(kept('ServiceTags is empty and TaggedAddresses is empty', SCHEMAS.catalogService, elements)).toEqual(['missing', 'nulls', 'odd']);
    expect(kept('ServiceName == ""', SCHEMAS.catalogService, elements)).toEqual(['missing', 'nulls', 'odd']);
    // The doc's own entries have "TaggedAddresses": null.
    expect(kept('TaggedAddresses is empty', SCHEMAS.catalogService, CATALOG_SERVICE)).toEqual(['node-1', 'node-2', 'node-4']);
  });

  test('a missing map key answers by operator (go-bexpr grammar/ast.go NotPresentDisposition)', () => {
    const schema: FilterSchema = { M: { map: 'string' }, L: { map: { list: 'string' } } };
    const element = { M: { present: 'x' }, L: {} };
    const keeps = (e: string): boolean => compileFilter(e, schema)(element);
    expect([keeps('M.absent == x'), keeps('M.absent != x'), keeps('M.absent matches "."'), keeps('M.absent not matches "."')]).toEqual([false, true, false, true]);
    expect([keeps('x in M.absent'), keeps('x not in M.absent'), keeps('L.absent is empty'), keeps('L.absent is not empty')]).toEqual([false, true, true, false]);
    expect([keeps('M.present == x'), keeps('M.present != x')]).toEqual([true, false]);
  });

  test('the predicate never throws, whatever JSON it is given', () => {
    const keep = compileFilter('Checks.Status == passing or Service.Meta.v matches "^1" or Node.TaggedAddresses is empty', SCHEMAS.serviceEntry);
    const odd = [null, 0, 'x', [], [1, 2], { Checks: 'x' }, { Checks: [null, 1, { Status: 5 }] }, { Service: [], Node: null }, { ['__proto__']: { Status: 'passing' } }];
    for (const v of odd) expect(() => keep(v)).not.toThrow();
    expect(keep({ Checks: [null, 1, { Status: 5 }, { Status: 'passing' }] })).toBe(true);
  });
});

describe('grammar quirks kept from bexpr', () => {
  test('`not` needs whitespace after it; operators like == do not need it around them', () => {
    expect(refusal('not(Status == passing)')).toBe('1:4 (3): no match found, expected: "!=", ".", "==", "[", [ \\t\\r\\n] or [a-zA-Z0-9_]');
    expect(kept('not (Status==critical)', SCHEMAS.check, NODE_CHECKS)).toEqual(['svc-web-health']);
    expect(kept('not not Status == critical', SCHEMAS.check, NODE_CHECKS)).toEqual(['node-health']);
  });

  test('a selector value is its dotted text, and a keyword where a value belongs is a value', () => {
    const elements = { dotted: { Name: 'a.b c' }, plain: { Name: 'not', ServiceTags: ['not'] } };
    expect(kept('Name == a["b c"]', SCHEMAS.check, elements)).toEqual(['dotted']);
    expect(kept('not in ServiceTags', SCHEMAS.check, elements)).toEqual(['plain']);
    expect(kept('Name == not', SCHEMAS.check, elements)).toEqual(['plain']);
  });

  test('a double-quoted string ends at the first quote, so only backticks can hold one', () => {
    expect(refusal('Name == "a\\"b"')).toBe('1:9 (8): rule "string": invalid syntax');
    expect(kept('Name == `a"b`', SCHEMAS.check, { q: { Name: 'a"b' }, r: { Name: 'ab' } })).toEqual(['q']);
    expect(kept('Name == "\\u00e9\\x41\\101"', SCHEMAS.check, { e: { Name: 'éAA' }, f: { Name: 'e' } })).toEqual(['e']);
  });

  test('selectors and values are case-sensitive, as Go field names and map keys', () => {
    expect(refusal('status == passing')).toBe('Selector "status" is not valid');
    expect(kept('Status == Critical', SCHEMAS.check, NODE_CHECKS)).toEqual([]);
  });
});

describe('refusals, with the message Consul gives', () => {
  test('FilterError is an InvalidOptionError for option "filter", with Consul\'s prefix', () => {
    let error: unknown;
    try {
      compileFilter('Foo == 1', SCHEMAS.check);
    } catch (e) {
      error = e;
    }
    expect(error).toBeInstanceOf(FilterError);
    expect(error).toBeInstanceOf(InvalidOptionError);
    const e = error as FilterError;
    expect([e.option, e.code, e.reason]).toEqual(['filter', 'grapevine.invalid-option', 'Selector "Foo" is not valid']);
    expect(e.message).toBe('filter: Failed to create boolean expression evaluator: Selector "Foo" is not valid');
  });

  test('syntax errors: grammar_test.go\'s cases, message for message', () => {
    const cases: [string, string][] = [
      ['foo == "12x', '1:12 (11): rule "string": Unterminated string literal'],
      ['foo == `12x', '1:12 (11): rule "string": Unterminated string literal'],
      ['foo == 3x', '1:9 (8): rule "number": Invalid number literal'],
      ['foo[3] == abc', '1:5 (4): rule "index": Invalid index'],
      ['x in foo["abc"', '1:15 (14): rule "index": Unclosed index expression'],
      ['foo["abc" == 3', '1:11 (10): rule "index": Unclosed index expression'],
      ['x in 32', '1:6 (5): rule "match": Invalid selector'],
      ['32 == 32', '1:4 (3): no match found, expected: "in", "not" or [ \\t\\r\\n]'],
      ['32 is empty', '1:4 (3): no match found, expected: "in", "not" or [ \\t\\r\\n]'],
      ['x in foo abc', '1:10 (9): no match found, expected: "and", "or", [ \\t\\r\\n] or EOF'],
      ['x in foo and ', '1:14 (13): no match found, expected: "(", "-", "0", "\\"", "`", "not", [ \\t\\r\\n], [1-9] or [a-zA-Z]'],
      ['x in foo or ', '1:13 (12): no match found, expected: "(", "-", "0", "\\"", "`", "not", [ \\t\\r\\n], [1-9] or [a-zA-Z]'],
      ['x in foo or not ', '1:17 (16): no match found, expected: "!=", "(", "-", "0", "==", "\\"", "`", "contains", "in", "is", "matches", "not", [ \\t\\r\\n], [1-9] or [a-zA-Z]'],
      ['(foo == 4', '1:10 (9): rule "grouping": Unmatched parentheses'],
    ];
    for (const [e, reason] of cases) expect(refusal(e), e).toBe(reason);
  });

  test('positions count lines, and columns in characters', () => {
    expect(refusal('Status == passing and\n  Name == 3x')).toBe('2:12 (33): rule "number": Invalid number literal');
    expect(refusal('Name == "é" or Name == 3x')).toBe('1:25 (25): rule "number": Invalid number literal'); // é: one column, two bytes
  });

  test('a selector naming no field of the element (validate.go)', () => {
    expect(refusal('Service.Foo == x', SCHEMAS.serviceEntry)).toBe('Selector "Service.Foo" is not valid');
    expect(refusal('Service.ID.x == y', SCHEMAS.serviceEntry)).toBe('Selector "Service.ID.x" is not valid');
    expect(refusal('Checks.Definition.HTTP == x', SCHEMAS.serviceEntry)).toBe('Selector "Checks.Definition" is not valid');
    expect(refusal('Datacenter == dc1', SCHEMAS.agentService)).toBe('Selector "Datacenter" is not valid');
    expect(refusal('constructor == x')).toBe('Selector "constructor" is not valid');
  });

  test('an operator the field does not support (field_config.go)', () => {
    expect(refusal('ServiceAddress is empty', SCHEMAS.catalogService)).toBe('Invalid match operator "Is Empty" for selector "ServiceAddress"');
    expect(refusal('ServicePort contains 1', SCHEMAS.catalogService)).toBe('Invalid match operator "In" for selector "ServicePort"');
    expect(refusal('ServiceTags == x', SCHEMAS.catalogService)).toBe('Invalid match operator "Equal" for selector "ServiceTags"');
    expect(refusal('Checks == x', SCHEMAS.serviceEntry)).toBe('Invalid match operator "Equal" for selector "Checks"');
    expect(refusal('x in Checks', SCHEMAS.serviceEntry)).toBe('Invalid match operator "In" for selector "Checks"');
    expect(refusal('ServiceWeights is empty', SCHEMAS.catalogService)).toBe('Invalid match operator "Is Empty" for selector "ServiceWeights"');
  });

  test('a value the field\'s type cannot take (coerce.go)', () => {
    expect(refusal('ServicePort == abc', SCHEMAS.catalogService)).toBe('Failed to coerce value "abc" for selector "ServicePort": strconv.ParseInt: parsing "abc": invalid syntax');
    expect(refusal('ServicePort == 1.5', SCHEMAS.catalogService)).toBe('Failed to coerce value "1.5" for selector "ServicePort": strconv.ParseInt: parsing "1.5": invalid syntax');
    expect(refusal('ServicePort == 9223372036854775808', SCHEMAS.catalogService)).toBe('Failed to coerce value "9223372036854775808" for selector "ServicePort": strconv.ParseInt: parsing "9223372036854775808": value out of range');
    expect(refusal('ServiceEnableTagOverride == yes', SCHEMAS.catalogService)).toBe('Failed to coerce value "yes" for selector "ServiceEnableTagOverride": strconv.ParseBool: parsing "yes": invalid syntax');
  });

  test('limits: 4 KiB of expression, 32 levels of parentheses', () => {
    const long = `Name == "${'x'.repeat(4096)}"`;
    expect(refusal(long)).toBe(`expression is ${long.length} bytes, the limit is 4096`);
    const nested = (n: number): string => `${'('.repeat(n)}Name == x${')'.repeat(n)}`;
    expect(kept(nested(32), SCHEMAS.check, { x: { Name: 'x' }, y: { Name: 'y' } })).toEqual(['x']);
    expect(refusal(nested(33))).toBe('1:33 (32): parentheses nest deeper than 32');
  });
});

describe('matches: RE2 syntax and semantics, in linear time', () => {
  const text = (s: string) => ({ Output: s });

  test('RE2 syntax JS lacks or spells differently: (?i) (?s) (?m) \\A \\z \\Q..\\E [[:class:]] \\pL (?P<name>)', () => {
    const cases: [string, string, boolean][] = [
      ['(?i)^PASS', 'passing', true],
      ['(?i:P)ASS', 'pASS', true],
      ['(?i:P)ASS', 'pass', false],
      ['\\Aa.b\\z', 'a\nb', false],
      ['(?s)\\Aa.b\\z', 'a\nb', true],
      ['a$', 'a\nb', false],
      ['(?m)a$', 'a\nb', true],
      ['\\Qa.b\\E', 'axb', false],
      ['\\Qa.b\\E', 'a.b', true],
      ['^[[:upper:]][[:digit:]]+$', 'A123', true],
      ['^[[:^alpha:]]+$', 'A123', false],
      ['^\\pL+$', 'héllo', true],
      ['^\\p{Greek}+$', 'λογος', true],
      ['^\\P{Greek}+$', 'λογος', false],
      ['^(?P<major>\\d+)\\.(?<minor>\\d+)$', '1.22', true],
      ['^\\x{1F600}|\\x41$', 'A', true],
      ['\\bweb\\b', 'my web app', true],
      ['\\bweb\\b', 'webapp', false],
      ['^a{2,3}$', 'aaaa', false],
      ['^(ab|cd){2}$', 'abcd', true],
      ['', 'anything', true],
    ];
    for (const [pattern, s, want] of cases) expect(compileFilter(`Output matches \`${pattern}\``, SCHEMAS.check)(text(s)), `${pattern} on ${JSON.stringify(s)}`).toBe(want);
  });

  test('classes are RE2\'s: \\s has no \\v, \\d and \\w are ASCII, . stops at \\n only', () => {
    const keeps = (pattern: string, s: string): boolean => compileFilter(`Output matches \`${pattern}\``, SCHEMAS.check)(text(s));
    expect([keeps('^\\s$', '\v'), keeps('^\\s$', '\f'), keeps('^\\d$', '٣'), keeps('^\\w$', 'é'), keeps('^.$', '\u2028')]).toEqual([false, true, false, false, true]);
  });

  test('constructs RE2 lacks are refused with Go\'s error', () => {
    const cases: [string, string][] = [
      ['(?<=a)b', 'invalid named capture: `(?<=a)b`'],
      ['a(?=b)', 'invalid or unsupported Perl syntax: `(?=`'],
      ['a(?!b)', 'invalid or unsupported Perl syntax: `(?!`'],
      ['(?>a)', 'invalid or unsupported Perl syntax: `(?>`'],
      ['(a)\\1', 'invalid escape sequence: `\\1`'],
      ['(?<n>a)\\k<n>', 'invalid escape sequence: `\\k`'],
      ['a++', 'invalid nested repetition operator: `++`'],
      ['\\Z', 'invalid escape sequence: `\\Z`'],
      ['\\u0041', 'invalid escape sequence: `\\u`'],
      ['*a', 'missing argument to repetition operator: `*`'],
      ['a{1001}', 'invalid repeat count: `{1001}`'],
      ['(a{100}){11}', 'invalid repeat count: `{11}`'],
      ['a(b', 'missing closing ): `a(b`'],
      ['a)b', 'unexpected ): `a)b`'],
      ['[b-a]', 'invalid character class range: `b-a`'],
      ['[[:alphanum:]]', 'invalid character class range: `[:alphanum:]`'],
      ['\\p{Klingon}', 'invalid character class range: `\\p{Klingon}`'],
      ['(?P<x>a)(?P<x>b)', 'duplicate capture group name: `(?P<x>`'],
    ];
    for (const [pattern, why] of cases) {
      expect(refusal(`Output matches \`${pattern}\``), pattern).toBe(`Failed to compile regular expression ${JSON.stringify(pattern)}: error parsing regexp: ${why}`);
    }
  });

  test('a pattern that makes a backtracking engine exponential runs in linear time', () => {
    const keep = compileFilter('Output matches `(a|a)*b` or Notes matches `^(a+)+$`', SCHEMAS.check);
    // 26 a's are 2^26 paths to a backtracker (seconds in V8's); a Thompson NFA walks the text once.
    const started = performance.now();
    expect(keep({ Output: 'a'.repeat(26), Notes: `${'a'.repeat(26)}!` })).toBe(false);
    expect(performance.now() - started).toBeLessThan(250);
    expect(keep({ Output: 'a'.repeat(40_000), Notes: `${'a'.repeat(40_000)}!` })).toBe(false);
    expect(keep({ Output: `${'a'.repeat(40_000)}b` })).toBe(true);
  });

  test('the patterns of one filter share a size budget', () => {
    expect(compileFilter('Output matches `a{1000}`', SCHEMAS.check)(text('a'.repeat(1000)))).toBe(true);
    expect(refusal('Output matches `a{1000}` and Notes matches `b{1000}` and Name matches `c{1000}`')).toBe(
      'Failed to compile regular expression "c{1000}": error parsing regexp: expression too large: `c{1000}`',
    );
  });
});

describe('properties', () => {
  const word = fc.constantFrom('passing', 'critical', 'web', 'primary', 'v1', '', 'a b');
  const quoted = word.map((w) => JSON.stringify(w));
  const match = fc.oneof(
    quoted.map((v) => `Checks.Status == ${v}`),
    quoted.map((v) => `Checks.Status != ${v}`),
    quoted.map((v) => `Service.Tags contains ${v}`),
    quoted.map((v) => `${v} not in Service.Tags`),
    quoted.map((v) => `Service.Meta.version == ${v}`),
    quoted.map((v) => `Service.Meta["version"] != ${v}`),
    quoted.map((v) => `${v} in Node.Meta`),
    quoted.map((v) => `Checks.ServiceTags not contains ${v}`),
    fc.constantFrom(
      'Service.Meta is empty', 'Checks is not empty', 'Node.Meta.rack matches `^r[0-9]+$`', 'Node.Meta.rack not matches `1`',
      'Service.Port == 8080', 'Service.EnableTagOverride == true', 'Service.Weights.Passing != 1', 'Checks.Output matches `(?i)ok`',
    ),
  );
  const expression = fc.letrec<{ e: string }>((tie) => ({
    e: fc.oneof(
      { maxDepth: 5 },
      match,
      fc.tuple(tie('e'), tie('e')).map(([a, b]) => `(${a}) and (${b})`),
      fc.tuple(tie('e'), tie('e')).map(([a, b]) => `(${a}) or (${b})`),
      tie('e').map((a) => `not (${a})`),
    ),
  })).e;
  const meta = fc.dictionary(fc.constantFrom('version', 'rack', 'zone'), fc.oneof(word, fc.constantFrom('r1', 'r12', 'rx')));
  const entry = fc.record(
    {
      Node: fc.record({ Meta: fc.oneof(meta, fc.constant(null)) }, { requiredKeys: [] }),
      Service: fc.record(
        {
          Tags: fc.oneof(fc.array(word, { maxLength: 3 }), fc.constant(null)),
          Meta: meta,
          Port: fc.constantFrom(8080, 80, '8080', null, 8080.5),
          EnableTagOverride: fc.oneof(fc.boolean(), fc.constant('true')),
          Weights: fc.record({ Passing: fc.constantFrom(1, 10) }),
        },
        { requiredKeys: [] },
      ),
      Checks: fc.array(
        fc.record({ Status: word, ServiceTags: fc.array(word, { maxLength: 2 }), Output: fc.constantFrom('OK', 'fail', '') }, { requiredKeys: [] }),
        { maxLength: 3 },
      ),
    },
    { requiredKeys: [] },
  );
  const element = fc.oneof(entry, fc.jsonValue({ maxDepth: 3 }));

  test('not (X) is the negation of X, not not X is X, and and/or are the conjunction/disjunction of their sides', () => {
    fc.assert(
      fc.property(expression, expression, fc.array(element, { minLength: 1, maxLength: 5 }), (x, y, elements) => {
        const px = compileFilter(x, SCHEMAS.serviceEntry);
        const py = compileFilter(y, SCHEMAS.serviceEntry);
        const notX = compileFilter(`not (${x})`, SCHEMAS.serviceEntry);
        const notNotX = compileFilter(`not not (${x})`, SCHEMAS.serviceEntry);
        const both = compileFilter(`(${x}) and (${y})`, SCHEMAS.serviceEntry);
        const either = compileFilter(`(${x}) or (${y})`, SCHEMAS.serviceEntry);
        for (const e of elements) {
          expect(notX(e)).toBe(!px(e));
          expect(notNotX(e)).toBe(px(e));
          expect(both(e)).toBe(px(e) && py(e));
          expect(either(e)).toBe(px(e) || py(e));
        }
      }),
      { numRuns: 300 },
    );
  });

  const token = fc.constantFrom(
    ' ', '(', ')', '[', ']', '"', '`', '.', '==', '!=', '-', '0', '7', '1.5', '\\', 'and', 'or', 'not', 'in', 'contains', 'matches',
    'is', 'empty', 'Checks', 'Status', 'Service', 'Tags', 'Meta', 'Port', 'Node', 'passing', 'x', '\n', '\t',
  );
  const reToken = fc.constantFrom(
    '(', ')', '[', ']', '{', '}', '*', '+', '?', '|', '^', '$', '.', '\\', '-', ':', '<', '>', '=', '!', 'P', 'i', 'm', 's', 'U', 'd',
    'w', 'p', 'L', 'x', 'Q', 'E', 'z', ',', '0', '1', '2', '9', 'a', 'é', '[:alpha:]', '{2,3}', '\\x{', '(?',
  );
  const soup = fc.oneof(
    fc.array(fc.oneof(token, fc.string({ maxLength: 3 })), { maxLength: 12 }).map((t) => t.join('')),
    fc.array(reToken, { maxLength: 12 }).map((t) => `Checks.Output matches \`${t.join('')}\``),
    fc.string({ unit: 'binary', maxLength: 30 }),
  );

  test('whatever the text, compileFilter throws nothing but a FilterError, and its predicate never throws', () => {
    fc.assert(
      fc.property(soup, fc.array(element, { maxLength: 3 }), (text, elements) => {
        let keep: ((value: unknown) => boolean) | undefined;
        try {
          keep = compileFilter(text, SCHEMAS.serviceEntry);
        } catch (e) {
          expect(e).toBeInstanceOf(FilterError);
        }
        if (keep !== undefined) for (const e of elements) expect(typeof keep(e)).toBe('boolean');
      }),
      { numRuns: 2000 },
    );
  });
});
