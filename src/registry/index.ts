/** The service catalog: records, the local index with lookup/pick, watches and the change feed. Pure (no I/O). */
export { Catalog } from './catalog.js';
export type { CatalogOptions, CatalogPort, CatalogView, ImportSink, Member } from './catalog.js';
export type { ImportedInstance, Instance, InstanceSource, LookupFilter, PickOptions, PickStrategy, RegistryOptions, ServiceChange } from './registry.js';
export { decodeRecord, encodeRecord, RECORD_LIMITS } from './record.js';
export type { Health, NodeRecord, ServiceDefinition, ServiceRecord } from './record.js';
export { WatchOverflowError } from './watch.js';
export type { WatchOptions } from './watch.js';
