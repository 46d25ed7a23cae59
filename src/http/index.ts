/**
 * The HTTP face of a member: a Consul-compatible API (agent, catalog, health, status, blocking
 * queries). Started by `Grapevine.start({ http: '127.0.0.1:8500' })` or `grapevine agent
 * --http 127.0.0.1:8500`; loaded only then.
 */
export { BODY_BYTES_MAX, HttpApi, serveHttp } from './server.js';
export { provideHttp } from './provide.js';
export { parseRegistration } from './consul.js';
export { parseDuration } from './decode.js';
