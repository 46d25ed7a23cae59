/** `npm run bench`: prints codec, core and registry figures. Compare ratios within one run; machines are noisy. */
import { benchCodec } from './codec.js';
import { benchCore, benchPushPull } from './core.js';
import { benchRegistry } from './registry.js';

console.log(`grapevine bench — node ${process.version}, ${new Date().toISOString()}`);
benchCodec();
benchCore();
benchPushPull();
await benchRegistry();
