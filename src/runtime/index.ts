/** The Node runtime: sockets, clock and timers around the pure core. */
export { Grapevine, JoinError } from './grapevine.js';
export type { GrapevineEvents, GrapevineOptions } from './grapevine.js';
export { BindError } from './transport.js';
export type { TransportStats } from './transport.js';
