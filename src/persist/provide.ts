/** Wires start() option `dataDir` to this folder, loaded on first use (the runtime imports no room of its own). */
import { provideExtension } from '../runtime/index.js';

export function providePersistence(): void {
  provideExtension('dataDir', async () => (await import('./data-dir.js')).serveDataDir);
}
