/**
 * Errors for misuse of the local API. Each carries a stable `code` that callers can match on;
 * messages are for humans and may change. Bad input from a peer never becomes one of these: the
 * core drops it, counts it and reports a `dropped` event instead (docs/ARCHITECTURE.md, Errors).
 */
export type GrapevineErrorCode =
  | 'grapevine.invalid-option'
  | 'grapevine.oversized'
  | 'grapevine.invalid-state'
  | 'grapevine.bind-failed'
  | 'grapevine.join-failed'
  | 'grapevine.name-conflict'
  | 'grapevine.watch-overflow'
  | 'grapevine.timeout'
  | 'grapevine.no-instance'
  | 'grapevine.data-dir';

export class GrapevineError extends Error {
  readonly code: GrapevineErrorCode;
  constructor(code: GrapevineErrorCode, message: string) {
    super(message);
    this.name = new.target.name;
    this.code = code;
  }
}

/** An option is missing, of the wrong type or out of range. `option` names it. */
export class InvalidOptionError extends GrapevineError {
  readonly option: string;
  constructor(option: string, message: string) {
    super('grapevine.invalid-option', `${option}: ${message}`);
    this.option = option;
  }
}

/** A local value (a member record, a name) exceeds its configured limit. */
export class OversizedError extends GrapevineError {
  readonly limit: number;
  readonly size: number;
  constructor(what: string, size: number, limit: number) {
    super('grapevine.oversized', `${what} is ${size} bytes, limit is ${limit}`);
    this.limit = limit;
    this.size = size;
  }
}

/** A command that the core's current state does not allow (e.g. join after leave). */
export class InvalidStateError extends GrapevineError {
  constructor(message: string) {
    super('grapevine.invalid-state', message);
  }
}
