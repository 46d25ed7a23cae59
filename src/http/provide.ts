/** Wires start() options `http` and `metrics` to this folder, loaded on first use (the runtime imports no interface). */
import { provideExtension } from '../runtime/index.js';

export function provideHttp(): void {
  provideExtension('http', async () => (await import('./server.js')).serveHttp);
  provideExtension('metrics', async () => (await import('./metrics.js')).serveMetrics);
}
