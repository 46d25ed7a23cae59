/** The service registry: records, the local index with lookup/pick, and watches. Pure (no I/O). */
export { Registry } from './registry.js';
export type { Instance, LookupFilter, PickOptions, PickStrategy, RegistryOptions, ServiceChange } from './registry.js';
export { LocalRecord } from './local.js';
export { decodeRecord, encodeRecord, RECORD_LIMITS } from './record.js';
export type { Health, NodeRecord, ServiceDefinition, ServiceRecord } from './record.js';
export { watchService, WatchOverflowError } from './watch.js';
export type { WatchOptions } from './watch.js';
