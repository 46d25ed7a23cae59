/** The service catalog: records, the local index with lookup/pick, watches and the change feed. Pure (no I/O). */
export { Catalog } from './catalog.js';
export type { CatalogOptions, CatalogPort, CatalogView, ImportSink, Member } from './catalog.js';
export type { ImportedInstance, Instance, InstanceSource, LookupFilter, PickOptions, PickStrategy, RegistryOptions, ServiceChange } from './registry.js';
export { CHECK_OUTPUT_BYTES_MAX, decodeRecord, encodeRecord, HEALTH, RECORD_LIMITS } from './record.js';
export type { CheckRecord, ExternalNode, Health, NodeRecord, ServiceDefinition, ServiceRecord, TaggedAddress } from './record.js';
export { WatchOverflowError } from './watch.js';
export type { WatchOptions } from './watch.js';
