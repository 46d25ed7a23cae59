/** The pure protocol core: membership state machine, wire codec, config, errors and RNG. */
export { Membership } from './membership.js';
export type { MemberChange, MembershipEvent, MembershipOptions, MembershipStats, Transmit } from './membership.js';
export type { MemberInfo, MemberStateName } from './members.js';
export { PROFILES, resolveConfig, retransmitLimit, pushPullIntervalMs } from './config.js';
export { suspicionTimeoutsMs } from './suspicion.js';
export { ROUND_TRIP_BOUNDS_MS } from './histogram.js';
export type { HistogramView } from './histogram.js';
export type { Config, ConfigOptions, ProfileName } from './config.js';
export { GrapevineError, InvalidOptionError, InvalidStateError, OversizedError } from './errors.js';
export type { GrapevineErrorCode } from './errors.js';
export { seededRng, randomInt, randomFloat, shuffle } from './rng.js';
export type { Rng } from './rng.js';
export { decodePacket, encodePacket, KeyringAction, MessageType, MemberState, PROTOCOL_VERSION } from './wire.js';
export type { DecodeError, DecodeErrorReason, DecodeResult, Message, WireLimits } from './wire.js';
export { Keyring, keyFingerprint, KEY_BYTES, SEAL_OVERHEAD_BYTES } from './seal.js';
export { formatAddress, hostOf, ipFamily, parseAddress } from './address.js';
export type { Address } from './address.js';
export { ReplayGuard, ReplayStamp, REPLAY_STAMP_BYTES, DATAGRAM_CHANNEL, STREAM_CHANNEL } from './replay.js';
