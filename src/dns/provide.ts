/** Wires start() option `dns` to this folder's server, loaded on first use (the runtime imports no interface). */
import { provideExtension } from '../runtime/index.js';

export function provideDns(): void {
  provideExtension('dns', async () => (await import('./server.js')).serveDns);
}
