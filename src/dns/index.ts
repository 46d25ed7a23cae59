/**
 * The DNS face of a member: A, AAAA, SRV and TXT answers from the local catalog with Consul's
 * naming. Started by `Grapevine.start({ dns: '127.0.0.1:8600' })` or `grapevine agent --dns`;
 * loaded only then.
 */
export { DnsServer, serveDns } from './server.js';
export { provideDns } from './provide.js';
export { ipToHex } from './answers.js';
