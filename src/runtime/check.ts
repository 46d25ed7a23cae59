/**
 * Validating a member's start options and registrations without starting anything: for a CLI
 * or a deployment tool that wants every mistake before a socket is bound.
 */
import { extensionFor, extensionsOf } from './extensions.js';
import { type GrapevineOptions, validate } from './options.js';
import { checkRegistration, type Registration } from './services.js';

/**
 * Throws what `Grapevine.start(options)` and `register()` of each of `registrations` would throw
 * for a bad value (InvalidOptionError naming the option or field), binding and registering nothing.
 * Interfaces' options (http, dns, bridges) are checked by the interface, loaded for it.
 */
export async function checkOptions(options: GrapevineOptions, registrations: readonly Registration[] = []): Promise<void> {
  validate(options);
  for (const [option, value] of extensionsOf(options)) {
    const load = extensionFor(option);
    if (load !== undefined) (await load()).check?.(value);
  }
  for (const r of registrations) checkRegistration(r);
}
