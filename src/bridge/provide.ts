/** Wires start() option `bridges` to this folder, loaded on first use (the runtime imports no interface). */
import { provideExtension } from '../runtime/index.js';

export function provideBridges(): void {
  provideExtension('bridges', async () => (await import('./index.js')).startBridges);
}
