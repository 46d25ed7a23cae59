/**
 * Request bodies read as Consul reads them: Go's encoding/json into a struct. Field names match
 * case-insensitively (the last of two spellings wins, as in Go), Consul's snake_case aliases
 * (`enable_tag_override`, `tls_skip_verify`) match too, unknown fields are ignored, and a value
 * of the wrong type is a 400 naming the field by its path (`Checks[1].Interval`). JSON null is
 * Go's zero value: the field counts as absent.
 */
import { InvalidOptionError } from '../runtime/index.js';

const MAX_DURATION_MS = 24 * 3600 * 1000;

/** Go's duration strings ("10s", "1m30s", "500ms", "1h"), or a number of nanoseconds as Consul also accepts. */
export function parseDuration(value: unknown, field: string): number {
  if (typeof value === 'number' && Number.isFinite(value) && value >= 0) return value / 1e6;
  if (typeof value !== 'string' || !/^(\d+(\.\d+)?(ns|us|µs|ms|s|m|h))+$/.test(value)) {
    throw new InvalidOptionError(field, `not a duration such as "10s" or "1m30s": ${JSON.stringify(value)}`);
  }
  const unit: Record<string, number> = { ns: 1e-6, us: 1e-3, µs: 1e-3, ms: 1, s: 1_000, m: 60_000, h: 3_600_000 };
  let ms = 0;
  for (const [, n, , u] of value.matchAll(/(\d+(\.\d+)?)(ns|us|µs|ms|s|m|h)/g)) ms += Number(n) * (unit[u as string] as number);
  if (ms > MAX_DURATION_MS) throw new InvalidOptionError(field, `longer than 24h: ${value}`);
  return ms;
}

const fold = (name: string): string => name.replace(/_/g, '').toLowerCase();

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

/** A JSON object seen as a Go struct: typed reads by field name, errors naming the field's path. */
export class GoObject {
  private readonly fields = new Map<string, unknown>();

  private constructor(value: Record<string, unknown>, readonly path: string) {
    for (const [k, v] of Object.entries(value)) if (v !== null) this.fields.set(fold(k), v);
  }

  /** `value` as a struct; `path` names it in errors ("" for the body itself). */
  static of(value: unknown, path = ''): GoObject {
    if (!isObject(value)) throw new InvalidOptionError(path === '' ? 'body' : path, 'must be a JSON object');
    return new GoObject(value, path);
  }

  /** Whether the field was given (and not null). */
  has(name: string): boolean {
    return this.fields.has(fold(name));
  }

  /** Which of `names` were given: for refusing fields we cannot honour. */
  present(names: readonly string[]): string[] {
    return names.filter((n) => this.has(n) && !isZero(this.raw(n)));
  }

  raw(name: string): unknown {
    return this.fields.get(fold(name));
  }

  /** The field's path for errors: `Check.Interval`. */
  at(name: string): string {
    return this.path === '' ? name : `${this.path}.${name}`;
  }

  private typed<T>(name: string, test: (v: unknown) => boolean, what: string): T | undefined {
    const v = this.raw(name);
    if (v === undefined) return undefined;
    if (!test(v)) throw new InvalidOptionError(this.at(name), `must be ${what}, got ${describe(v)}`);
    return v as T;
  }

  string(name: string): string | undefined {
    return this.typed(name, (v) => typeof v === 'string', 'a string');
  }

  bool(name: string): boolean | undefined {
    return this.typed(name, (v) => typeof v === 'boolean', 'true or false');
  }

  /** An integer in [min, max] (Go's int and uint fields refuse fractions and, for uint, negatives). */
  int(name: string, min = Number.MIN_SAFE_INTEGER, max = Number.MAX_SAFE_INTEGER): number | undefined {
    return this.typed(name, (v) => Number.isInteger(v) && (v as number) >= min && (v as number) <= max, `an integer in ${min}..${max}`);
  }

  strings(name: string): string[] | undefined {
    return this.typed(name, (v) => Array.isArray(v) && v.every((s) => typeof s === 'string'), 'an array of strings');
  }

  /** map[string]string. */
  stringMap(name: string): Record<string, string> | undefined {
    return this.typed(name, (v) => isObject(v) && Object.values(v).every((s) => typeof s === 'string'), 'an object of strings');
  }

  /** map[string][]string (HTTP check headers). */
  stringListMap(name: string): Record<string, string[]> | undefined {
    return this.typed(name, (v) => isObject(v) && Object.values(v).every((l) => Array.isArray(l) && l.every((s) => typeof s === 'string')), 'an object of string arrays');
  }

  /** A duration in ms: a Go duration string, or nanoseconds. */
  duration(name: string): number | undefined {
    const v = this.raw(name);
    // Consul's own clients send "" for an unset duration.
    return v === undefined || v === '' ? undefined : parseDuration(v, this.at(name));
  }

  /** map[string]struct: keys kept as sent (map keys are data, not field names). */
  objectMap(name: string): Record<string, GoObject> | undefined {
    const v = this.typed<Record<string, unknown>>(name, isObject, 'an object');
    return v === undefined ? undefined : Object.fromEntries(Object.entries(v).map(([k, o]) => [k, GoObject.of(o, `${this.at(name)}.${k}`)]));
  }

  object(name: string): GoObject | undefined {
    const v = this.raw(name);
    return v === undefined ? undefined : GoObject.of(v, this.at(name));
  }

  objects(name: string): GoObject[] | undefined {
    const v = this.raw(name);
    if (v === undefined) return undefined;
    if (!Array.isArray(v)) throw new InvalidOptionError(this.at(name), `must be an array of objects, got ${describe(v)}`);
    return v.map((o, n) => GoObject.of(o, `${this.at(name)}[${n}]`));
  }

  /** Whether the struct was given no fields at all (Consul's empty `Check: {}` means none). */
  get empty(): boolean {
    return this.fields.size === 0;
  }
}

/** Go's zero values: a field holding one was as good as not sent. */
function isZero(v: unknown): boolean {
  return v === '' || v === 0 || v === false || (Array.isArray(v) && v.length === 0) || (isObject(v) && Object.keys(v).length === 0);
}

function describe(v: unknown): string {
  if (Array.isArray(v)) return 'an array';
  if (v === null) return 'null';
  return typeof v === 'object' ? 'an object' : `${typeof v} ${JSON.stringify(v).slice(0, 40)}`;
}
