/**
 * The key-value store: every member holds a replica, eventually consistent (last writer wins
 * under a hybrid logical clock). Every member runs it unless started with `kv: false`.
 */
export type { Kv, KvChange, KvEntry, KvOptions } from './api.js';
export { provideKv } from './provide.js';
