/**
 * `npm run fuzz -- --count 1000000 --seed S [--keyring]`: the long hostile-input run against three
 * real members on 127.0.0.1 (the inputs of test/fuzz-inputs.ts). Prints what was sent and how
 * fast, crashes (exceptions that reached the event loop), heap before, at peak and after GC,
 * event-loop delay p99 (of this process, which also runs the sender), state changes (with a
 * keyring there must be none) and the reply-to-request byte ratio. Bounded by --count.
 */
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { parseArgs } from 'node:util';
import fc from 'fast-check';
import { Grapevine } from '../src/index.js';
import { HostileSender, hostileInputs } from '../test/fuzz-inputs.js';

const { values } = parseArgs({
  options: { count: { type: 'string', default: '100000' }, seed: { type: 'string' }, keyring: { type: 'boolean', default: false } },
});
const count = Number(values.count);
const seed = Number(values.seed ?? Math.floor(Math.random() * 2 ** 31));
const sealed = values.keyring === true;
const gc = (globalThis as { gc?: () => void }).gc;
const heapMb = (): number => process.memoryUsage().heapUsed / 2 ** 20;
// Small chunks: generating inputs blocks this process, and the delay figure should be the members', not the generator's.
const CHUNK = 250;
const FRAMES_IN_FLIGHT = 32;

let crashes = 0;
process.on('uncaughtException', (e) => {
  crashes++;
  console.error('uncaught:', e);
});

const keyring = sealed ? { keyring: [new Uint8Array(32).fill(7)] } : {};
const members = [await Grapevine.start({ name: 'a', bind: '127.0.0.1:0', profile: 'local', ...keyring })];
for (const name of ['b', 'c']) members.push(await Grapevine.start({ name, bind: '127.0.0.1:0', profile: 'local', seeds: [members[0]!.address], ...keyring }));
while (!members.every((g) => g.members().filter((m) => m.state === 'alive').length === 3)) await new Promise((r) => setTimeout(r, 50));
let stateChanges = 0;
for (const g of members) g.on('member', () => stateChanges++);
const indexBefore = members.reduce((s, g) => s + g.catalog.index, 0);

gc?.();
const heapBefore = heapMb();
let heapPeak = heapBefore;
const sampler = setInterval(() => {
  heapPeak = Math.max(heapPeak, heapMb());
}, 100);
const delay = monitorEventLoopDelay({ resolution: 10 });
delay.enable();
console.log(`fuzz: ${count} inputs, seed ${seed}, keyring ${sealed}; members ${members.map((g) => g.address).join(' ')}`);
const sender = await HostileSender.open();
const started = performance.now();
const inFlight = new Set<Promise<void>>();
for (let done = 0, chunk = 0; done < count; chunk++) {
  const n = Math.min(CHUNK, count - done);
  const inputs = fc.sample(fc.tuple(hostileInputs(members.map((g) => g.name), members.map((g) => g.address), sealed), fc.integer({ min: 0, max: 2 })), { seed: seed + chunk, numRuns: n });
  for (const [input, to] of inputs) {
    const sending = sender.send(members[to]!.address, input);
    if (!input.stream) await sending;
    else {
      const p = sending.finally(() => inFlight.delete(p));
      inFlight.add(p);
      if (inFlight.size >= FRAMES_IN_FLIGHT) await Promise.race(inFlight);
    }
  }
  done += n;
  if (chunk % 80 === 79) console.log(`  ${done} sent, ${(done / ((performance.now() - started) / 1000)).toFixed(0)}/s, heap ${heapMb().toFixed(1)} MB`);
}
await Promise.all(inFlight);
const seconds = (performance.now() - started) / 1000;
await new Promise((r) => setTimeout(r, 1_000));
delay.disable();
clearInterval(sampler);
sender.close();
gc?.();
const heapAfter = heapMb();
const total = sender.sent.datagrams + sender.sent.frames;
const alive = members.every((g) => members.every((o) => g.member(o.name)?.state === 'alive'));
console.log(`sent                 ${total} (${sender.sent.datagrams} datagrams, ${sender.sent.frames} frames) in ${seconds.toFixed(1)} s, ${(total / seconds).toFixed(0)}/s`);
console.log(`crashes              ${crashes}`);
console.log(`heap MB              before ${heapBefore.toFixed(1)}, peak ${heapPeak.toFixed(1)}, after GC ${gc === undefined ? 'n/a (run with --expose-gc)' : heapAfter.toFixed(1)}`);
console.log(`event-loop delay     p99 ${(delay.percentile(99) / 1e6).toFixed(1)} ms, max ${(delay.max / 1e6).toFixed(1)} ms (this process sends too)`);
console.log(`state changes        ${stateChanges} member events, catalog index +${members.reduce((s, g) => s + g.catalog.index, 0) - indexBefore}${sealed ? ' (must be 0 with a keyring)' : ''}`);
console.log(`replies to fuzzer    ${sender.replies.count} datagrams, ${sender.replies.bytes} bytes = ${(sender.replies.bytes / Math.max(1, sender.sent.datagramBytes)).toFixed(4)} x the ${sender.sent.datagramBytes} bytes sent; largest ${sender.replies.largest}`);
console.log(`real members alive   ${alive ? 'everywhere' : 'not everywhere (phantoms dilute gossip without a keyring)'}`);
console.log(`dropped at a         ${JSON.stringify(members[0]!.stats().core.dropped)}`);
await Promise.all(members.map((g) => g.close()));
process.exit(crashes > 0 || (sealed && stateChanges > 0) ? 1 : 0);
