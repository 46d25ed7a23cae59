/** What `gv.query` and `gv.answer` take and give (docs/library.md, "Queries"). */

/** One member's answer to a query. */
export interface QueryAnswer {
  /** The answering member's name. */
  readonly from: string;
  readonly payload: Uint8Array;
}

export interface QueryOptions {
  /** Only these members answer (serf's FilterNodes). */
  nodes?: readonly string[];
  /**
   * Only members whose node metadata matches answer: each value is a regular expression (Go's
   * RE2 syntax, unanchored, as serf's FilterTags) matched against the member's value for that
   * key ("" when it has none).
   */
  tags?: Readonly<Record<string, string>>;
  /** How long answers are gathered (default serf's: gossip interval x 16 x ceil(log10(N + 1))). */
  timeoutMs?: number;
  /** Ends the iteration early. */
  signal?: AbortSignal;
}

/** What an answering member is told about a query. */
export interface QueryContext {
  /** The member that asked. */
  readonly from: string;
  /** The query's name. */
  readonly name: string;
}

/** This member's answer to queries of one name: bytes or text, or undefined for none. */
export type AnswerHandler = (payload: Uint8Array, query: QueryContext) =>
  Uint8Array | string | undefined | Promise<Uint8Array | string | undefined>;

/** The queries room of one member: what `gv.query` and `gv.answer` call. */
export interface Queries {
  query(name: string, payload?: Uint8Array | string, options?: QueryOptions): AsyncIterableIterator<QueryAnswer>;
  answer(name: string, handler: AnswerHandler): () => void;
}
