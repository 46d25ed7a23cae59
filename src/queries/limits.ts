/** The limits of queries, in one place (docs/library.md, "Queries"). */

/** Largest answer payload (ours; serf's QueryResponseSizeLimit is 1,024): above a datagram's room, an answer goes as a stream request. */
export const ANSWER_BYTES_MAX = 64 * 1024;
/** Longest query name, in UTF-8 bytes. */
export const QUERY_NAME_BYTES_MAX = 256;
/** Tag filters in one query: each is a regular expression every member compiles. */
export const TAG_FILTERS_MAX = 16;
/** Longest tag filter pattern, in characters. */
export const TAG_PATTERN_CHARS_MAX = 256;
/** Longest wait a query may ask for (ours: a query is a question for now, not a subscription). */
export const QUERY_TIMEOUT_MS_MAX = 600_000;
