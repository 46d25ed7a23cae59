/** Which member runs which key-value store, for `gv.kv`. */
import { Rooms } from '../runtime/index.js';
import type { Kv } from './api.js';

export const rooms = new Rooms<Kv>();
