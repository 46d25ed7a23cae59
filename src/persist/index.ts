/**
 * The data directory: what a member was told (registrations made with `persist: true`, its name,
 * its keyring, the members last seen) kept across restarts. Started by
 * `Grapevine.start({ dataDir })` or `grapevine agent --data-dir DIR`; loaded only then.
 */
export { DataDirError } from '../runtime/index.js';
export { providePersistence } from './provide.js';
