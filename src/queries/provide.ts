/**
 * Wires start() option `queries` to this folder (every member answers queries unless
 * `queries: false`), and gives Grapevine `query` and `answer` by declaration merging: the runtime
 * imports no room, and this file does not load room.ts until a member starts.
 */
import { Grapevine, InvalidStateError, provideExtension } from '../runtime/index.js';
import type { AnswerHandler, Queries, QueryAnswer, QueryOptions } from './api.js';
import { rooms } from './rooms.js';

declare module '../runtime/index.js' {
  interface Grapevine {
    /**
     * Asks every member (or those `nodes` and `tags` select) and yields their answers as they
     * come, one per member, until `timeoutMs` or until every live member the filters select
     * has answered. Throws OversizedError when the query does not fit a datagram,
     * InvalidOptionError for bad arguments, InvalidStateError when this member runs no queries.
     */
    query(name: string, payload?: Uint8Array | string, options?: QueryOptions): AsyncIterableIterator<QueryAnswer>;
    /** Answers queries named `name` here (one handler per name); returns the function that stops answering. */
    answer(name: string, handler: AnswerHandler): () => void;
  }
  interface GrapevineOptions {
    /** Queries (gv.query, gv.answer): on unless `false`. */
    queries?: boolean;
  }
}

function room(member: Grapevine): Queries {
  const r = rooms.of(member);
  if (r === undefined) throw new InvalidStateError('this member runs no queries (started with queries: false, or closed)');
  return r;
}

export function provideQueries(): void {
  provideExtension('queries', async () => (await import('./room.js')).serveQueries, true);
  if (Object.getOwnPropertyDescriptor(Grapevine.prototype, 'query') !== undefined) return;
  Object.defineProperty(Grapevine.prototype, 'query', {
    configurable: true,
    value: function query(this: Grapevine, name: string, payload?: Uint8Array | string, options?: QueryOptions): AsyncIterableIterator<QueryAnswer> {
      return room(this).query(name, payload, options);
    },
  });
  Object.defineProperty(Grapevine.prototype, 'answer', {
    configurable: true,
    value: function answer(this: Grapevine, name: string, handler: AnswerHandler): () => void {
      return room(this).answer(name, handler);
    },
  });
}
