/** Which member runs which queries room, for `gv.query` and `gv.answer`. */
import { Rooms } from '../runtime/index.js';
import type { Queries } from './api.js';

export const rooms = new Rooms<Queries>();
