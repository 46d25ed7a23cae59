/**
 * Queries (serf's `serf query`): `gv.query(name, payload, { nodes, tags, timeoutMs })` asks every
 * member and yields the answers as they come; `gv.answer(name, handler)` answers here. Every
 * member runs them unless started with `queries: false`; room.ts is loaded only when one starts.
 */
export type { AnswerHandler, QueryAnswer, QueryContext, QueryOptions } from './api.js';
export { provideQueries } from './provide.js';
export { ANSWER_BYTES_MAX, QUERY_NAME_BYTES_MAX, QUERY_TIMEOUT_MS_MAX, TAG_FILTERS_MAX, TAG_PATTERN_CHARS_MAX } from './limits.js';
