/** Wires start() option `http` to this folder's server, loaded on first use (the runtime imports no interface). */
import { provideExtension } from '../runtime/index.js';

export function provideHttp(): void {
  provideExtension('http', async () => (await import('./server.js')).serveHttp);
}
