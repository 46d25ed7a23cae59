/** The Node runtime: sockets, clock and timers around the pure core, with the registry and health checks. */
export { Grapevine, JoinError, NameConflictError, WaitTimeoutError } from './grapevine.js';
export type { BridgeCommonOptions, BridgeOptions, CheckHandle, DnsOptions, EtcdBridgeOptions, GrapevineEvents, GrapevineOptions, HttpOptions, HttpTls, Persisted, Registration, RegistrationJournal, ServiceHandle, StandaloneCheck, ZookeeperBridgeOptions } from './grapevine.js';
export { provideExtension } from './extensions.js';
export { checkOptions } from './check.js';
export { DataDirError, lockDir, StateFile } from './state-files.js';
export { Rooms } from './rooms.js';
export type { AppChannel, AppHandler } from './channels.js';
export { APP_CHANNELS } from '../core/app-channels.js';
export { packageVersion } from './system.js';
// Address helpers and the errors the runtime's methods throw, for interfaces that import only this surface.
export { formatAddress, hostOf, ipFamily, parseAddress } from '../core/address.js';
export { GrapevineError, InvalidOptionError, InvalidStateError, OversizedError } from '../core/errors.js';
export { keyFingerprint } from '../core/seal.js';
// The protocol parameters a start() would use, for rooms that time themselves by them (queries' default timeout).
export { resolveConfig } from '../core/config.js';
export type { Extension, ExtensionContext, ExtensionStarter } from './extensions.js';
export { BindError } from './transport.js';
export { bindPair } from './bind.js';
export { LOG_LEVELS } from './log.js';
export type { LogFields, Logger, LogLevel } from './log.js';
export type { TransportStats } from './transport.js';
export { HealthCheck } from './health-check.js';
export type { CheckDefinition, FunctionCheck, HttpCheck, TcpCheck, TtlCheck } from './health-check.js';
