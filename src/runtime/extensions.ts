/**
 * Interfaces served beside a member (the HTTP API, metrics, DNS) are started by an option of
 * `Grapevine.start()` (`http: ...`), yet the runtime imports none of them: arrows point down.
 * The package entry (src/index.ts) names, for each option, how to load its interface, and the
 * runtime loads it only when a member is started with that option, so a plain member pays
 * nothing for the interfaces it does not use.
 */
import type { ImportSink } from '../registry/catalog.js';
import type { Grapevine } from './grapevine.js';
import type { Logger } from './log.js';
import type { GrapevineOptions } from './options.js';

/** A running interface; closed with its member (before the sockets). */
export interface Extension {
  /** Where it listens ("127.0.0.1:8500"), if it does. */
  readonly address?: string;
  /** Its counters, for `gv.stats().interfaces` and metrics. */
  readonly stats?: Readonly<Record<string, number>>;
  /** Gossip addresses of this member's pool that the interface knows of (a bridge's store): seeds at every join attempt. */
  seeds?(): Promise<string[]>;
  close(): Promise<void>;
}

export interface ExtensionContext {
  logger: Logger;
  /** Where interfaces that read other registries (bridges) put the instances they import. */
  imports: ImportSink;
}

/**
 * Starts an interface for `member` from the option's value; throws InvalidOptionError for a bad
 * value. `check`, if there, validates a value without starting anything (checkOptions).
 * `prepare`, if there, may amend the start options before the member is made (a data
 * directory's saved name and keyring); it validates its value first.
 */
export type ExtensionStarter = ((member: Grapevine, value: unknown, context: ExtensionContext) => Promise<Extension>) & {
  check?: (value: unknown) => void;
  prepare?: (value: unknown, options: GrapevineOptions) => Promise<GrapevineOptions>;
};

const loaders = new Map<string, () => Promise<ExtensionStarter>>();
/** Options a member starts with unless told `false` (rooms every member runs: the key-value store, events, queries). */
const defaults = new Map<string, unknown>();

/**
 * Makes start() option `option` start the interface that `load` imports. Called by the package
 * entry. With `byDefault`, a member that does not give the option starts it with that value
 * (`option: false` turns it off).
 */
export function provideExtension(option: string, load: () => Promise<ExtensionStarter>, byDefault?: unknown): void {
  loaders.set(option, load);
  if (byDefault !== undefined) defaults.set(option, byDefault);
}

/** The interfaces `options` start, with their values: those given, then the defaults not given; `false` turns one off. */
export function extensionsOf(options: GrapevineOptions): [string, unknown][] {
  const given = Object.entries(options ?? {}).filter(([option, value]) => loaders.has(option) && value !== undefined && value !== false);
  const implied = [...defaults].filter(([option]) => (options as Record<string, unknown> | undefined)?.[option] === undefined);
  return [...given, ...implied];
}

/** The loader for `option`, if an interface provides it. */
export function extensionFor(option: string): (() => Promise<ExtensionStarter>) | undefined {
  return loaders.get(option);
}

/** `options` as the interfaces they start would amend them before the member is made. */
export async function prepareOptions(options: GrapevineOptions): Promise<GrapevineOptions> {
  let out = options;
  for (const [option, value] of extensionsOf(options)) {
    const load = loaders.get(option);
    const prepare = load === undefined ? undefined : (await load()).prepare;
    if (prepare !== undefined) out = await prepare(value, out);
  }
  return out;
}
