/**
 * Command-line parsing shared by the subcommands: parseArgs with a `--help`/`-h` flag added,
 * and every parse error turned into a UsageError, which main.ts prints as one line plus the
 * usage (exit 2), never a stack trace.
 */
/** A mistake on the command line: main.ts prints the message and the command's usage, and exits 2. */
export class UsageError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'UsageError';
  }
}

/** `--help` was given: main.ts prints the usage to stdout and exits 0. */
export class HelpRequested extends Error {}

/** Every subcommand takes --help / -h. */
export const HELP = { help: { type: 'boolean', short: 'h' } } as const;

/** Runs a parseArgs call (with HELP among its options); throws UsageError on a bad command line, HelpRequested on --help. */
export function parse<T extends { values: { help?: boolean | undefined } }>(run: () => T): T {
  let parsed: T;
  try {
    parsed = run();
  } catch (e) {
    // Node's message names the option; its advice about "--" suits no command here.
    throw new UsageError((e as Error).message.replace(/\. To specify a positional argument.*$/s, '.'));
  }
  if (parsed.values.help === true) throw new HelpRequested();
  return parsed;
}

/** A whole number in [min, max] from option `name`, or a UsageError. */
export function integer(value: string, name: string, min: number, max: number): number {
  const n = Number(value);
  if (!/^\d+$/.test(value) || n < min || n > max) throw new UsageError(`--${name} must be a whole number from ${min} to ${max}, got "${value}"`);
  return n;
}
