/**
 * grapevine: an embedded, peer-to-peer service registry for Node.js.
 * This entry point re-exports the public API; the Node runtime (Grapevine.start) and the
 * registry build on the pure core exported here.
 */
export * from './core/index.js';
