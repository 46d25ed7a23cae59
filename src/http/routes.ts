/**
 * What the endpoint modules (agent.ts, catalog.ts, operator.ts) get from the server: the member, a way to add
 * routes, and the change indexes their answers carry.
 */
import type { Grapevine, Logger } from '../runtime/index.js';

/** An HTTP error with Consul's status and a plain-text reason. */
export class HttpError extends Error {
  constructor(readonly status: number, message: string) {
    super(message);
  }
}

export interface Reply {
  body: unknown;
  index?: number;
  /** A status other than 200 with a JSON body (the agent's health endpoints answer 429 and 503). */
  status?: number;
  /** A reply that is not JSON (Prometheus's text format, the status page). */
  text?: { contentType: string; body: string };
  /** Extra headers (X-Consul-ContentHash). */
  headers?: Record<string, string>;
  /** The JSON body already serialized (when JSON.stringify cannot write it: a uint64). */
  json?: string;
  /** A body served as it is, application/octet-stream. */
  raw?: Uint8Array;
}

export interface Request {
  params: string[];
  query: URLSearchParams;
  body: () => Promise<unknown>;
  /** The body as bytes (the key-value store's values). */
  raw: () => Promise<Uint8Array>;
  signal: AbortSignal;
  /** The client's address, as the socket says. */
  remote: string;
}

export type Handler = (req: Request) => Reply | Promise<Reply>;

export interface RouteOptions {
  /** Needs the token when one is set (default: PUT and DELETE routes). */
  write?: boolean;
  /** Needs no token at all (Consul's /v1/status endpoints, which probes ask). */
  open?: boolean;
  /** For blocking reads: the endpoint's index given its path parameters (and query). */
  index?: (params: string[], query: URLSearchParams) => number;
  /** For reads that block on `?hash=` (Consul's content hash) rather than an index. */
  hash?: (params: string[]) => string;
  /** A blocking read wakes when its index moves, even if its answer reads the same (the key-value store's ModifyIndex). */
  exact?: boolean;
}

export type Method = 'GET' | 'PUT' | 'POST' | 'DELETE';

export interface Api {
  readonly gv: Grapevine;
  readonly log: Logger;
  /** Whether requests must carry a token (http.token). */
  readonly tokenRequired: boolean;
  route(method: Method, path: string, handle: Handler, options?: RouteOptions): void;
  /** Something an index route reads changed: wake the blocking queries whose index moved. */
  wake(): void;
  /** Calls `fn` when the API closes. */
  onClose(fn: () => void): void;
  catalogIndex(): number;
  serviceIndex(name: string): number;
  nodeIndex(): number;
}

/** A boolean query flag as Consul reads one: present and not "false" or "0". */
export function flag(query: URLSearchParams, name: string): boolean {
  const v = query.get(name);
  return v !== null && v !== 'false' && v !== '0';
}
