/** `npm run bench`: prints codec and core figures. Compare ratios within one run; machines are noisy. */
import { benchCodec } from './codec.js';
import { benchCore } from './core.js';

console.log(`grapevine bench — node ${process.version}, ${new Date().toISOString()}`);
benchCodec();
benchCore();
