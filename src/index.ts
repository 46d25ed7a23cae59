/**
 * grapevine: an embedded, peer-to-peer service registry for Node.js. This entry point only
 * re-exports: the runtime (`Grapevine.start`) and the pure core it drives.
 */
export * from './runtime/index.js';
export * from './core/index.js';
