/**
 * grapevine: an embedded, peer-to-peer service registry for Node.js. This entry point only
 * re-exports: the runtime (`Grapevine.start`), the registry and health checks it serves, and the pure core it drives.
 */
export * from './runtime/index.js';
export * from './registry/index.js';
export * from './core/index.js';
export { DataDirError } from './persist/index.js';
export { EVENT_BYTES_MAX } from './events/index.js';
export type { FireOptions, UserEvent } from './events/index.js';
export type { Kv, KvChange, KvEntry, KvOptions } from './kv/index.js';
export { ANSWER_BYTES_MAX } from './queries/index.js';
export type { AnswerHandler, QueryAnswer, QueryContext, QueryOptions } from './queries/index.js';
import { provideBridges } from './bridge/provide.js';
import { provideDns } from './dns/provide.js';
import { provideEvents } from './events/provide.js';
import { provideHttp } from './http/provide.js';
import { provideKv } from './kv/provide.js';
import { providePersistence } from './persist/provide.js';
import { provideQueries } from './queries/provide.js';

// Interfaces started by start() options, imported only when a member uses them.
provideHttp();
provideDns();
provideBridges();
providePersistence();
provideQueries();
provideEvents();
provideKv();
