/** Health checks (HTTP, TCP, TTL, function) that keep a registered instance's health current. */
export { HealthCheck } from './check.js';
export type { CheckDefinition, FunctionCheck, HttpCheck, TcpCheck, TtlCheck } from './check.js';
