/**
 * Logging. The library takes any object with debug/info/warn/error methods (console, pino,
 * winston) and calls each with a message and, as a second argument, a small object of fields.
 * Silent by default: a library writes nothing unless asked. Dropped peer input is summarized,
 * at most one line per DROP_SUMMARY_MS, so a flood cannot flood the log too.
 */
import { InvalidOptionError } from '../core/errors.js';

export type LogFields = Record<string, unknown>;

export interface Logger {
  debug(message: string, fields?: LogFields): void;
  info(message: string, fields?: LogFields): void;
  warn(message: string, fields?: LogFields): void;
  error(message: string, fields?: LogFields): void;
}

export const LOG_LEVELS = ['debug', 'info', 'warn', 'error'] as const;
export type LogLevel = (typeof LOG_LEVELS)[number];

const noop = (): void => undefined;
export const SILENT: Logger = { debug: noop, info: noop, warn: noop, error: noop };

/** `logger` if it has the four methods, SILENT if undefined; else an InvalidOptionError naming `option`. */
export function checkLogger(logger: unknown, option = 'logger'): Logger {
  if (logger === undefined) return SILENT;
  const l = logger as Record<string, unknown> | null;
  const missing = LOG_LEVELS.filter((m) => typeof l?.[m] !== 'function');
  if (l === null || typeof l !== 'object' || missing.length > 0) {
    throw new InvalidOptionError(option, `must have debug, info, warn and error methods (console or pino will do); missing ${missing.join(', ')}`);
  }
  return l as unknown as Logger;
}

/** `logger` passing on only `level` and above (`silent`: nothing); InvalidOptionError('logLevel') for another level. */
export function atLevel(logger: Logger, level: LogLevel | 'silent'): Logger {
  if (level !== 'silent' && !LOG_LEVELS.includes(level)) throw new InvalidOptionError('logLevel', `must be one of ${LOG_LEVELS.join(', ')} or silent; got ${JSON.stringify(level)}`);
  if (logger === SILENT || level === 'silent') return SILENT;
  const min = LOG_LEVELS.indexOf(level);
  if (min === 0) return logger;
  const pass = (l: LogLevel): Logger[LogLevel] => (LOG_LEVELS.indexOf(l) >= min ? (m, f) => logger[l](m, f) : noop);
  return { debug: pass('debug'), info: pass('info'), warn: pass('warn'), error: pass('error') };
}

/** Dropped input is counted and logged as one summary line after this long. */
export const DROP_SUMMARY_MS = 10_000;
/** Drop reasons that mean keys differ between members: a configuration problem, worth a warning. */
const KEY_REASONS = new Set(['wrong-key', 'plaintext', 'encrypted', 'bad-seal', 'key-refused']);
const SOURCES_SHOWN = 3;

/** Counts dropped input and logs a summary once per DROP_SUMMARY_MS while drops keep coming. */
export class DropSummary {
  private counts = new Map<string, number>();
  private sources = new Set<string>();
  private timer: NodeJS.Timeout | undefined;

  constructor(private readonly log: Logger) {}

  add(from: string, reason: string): void {
    if (this.log === SILENT) return;
    this.counts.set(reason, (this.counts.get(reason) ?? 0) + 1);
    if (this.sources.size < SOURCES_SHOWN) this.sources.add(from);
    if (this.timer === undefined) {
      this.timer = setTimeout(() => this.flush(), DROP_SUMMARY_MS);
      this.timer.unref();
    }
  }

  /** Logs what was counted (if anything) and starts over. */
  flush(): void {
    clearTimeout(this.timer);
    this.timer = undefined;
    if (this.counts.size === 0) return;
    const reasons = Object.fromEntries(this.counts);
    const total = [...this.counts.values()].reduce((a, b) => a + b, 0);
    const keyProblem = [...this.counts.keys()].some((r) => KEY_REASONS.has(r));
    const text = Object.entries(reasons).map(([r, n]) => `${r} ${n}`).join(', ');
    const from = [...this.sources];
    const message = `dropped ${total} peer packet(s) in the last ${DROP_SUMMARY_MS / 1_000} s: ${text} (from ${from.join(', ')}${total > from.length ? ', ...' : ''})`
      + (keyProblem ? '; key errors mean members do not share a key' : '');
    this.log.warn(message, { dropped: reasons, from });
    this.counts = new Map();
    this.sources = new Set();
  }

  stop(): void {
    clearTimeout(this.timer);
    this.timer = undefined;
  }
}
