/**
 * grapevine: an embedded, peer-to-peer service registry for Node.js. This entry point only
 * re-exports: the runtime (`Grapevine.start`), the registry and health checks it serves, and the pure core it drives.
 */
export * from './runtime/index.js';
export * from './registry/index.js';
export * from './core/index.js';
export { DataDirError } from './persist/index.js';
import { provideBridges } from './bridge/provide.js';
import { provideDns } from './dns/provide.js';
import { provideHttp } from './http/provide.js';
import { providePersistence } from './persist/provide.js';

// Interfaces started by start() options, imported only when a member uses them.
provideHttp();
provideDns();
provideBridges();
providePersistence();
