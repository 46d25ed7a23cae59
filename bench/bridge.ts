/**
 * `npm run bench:bridge`: federation through real etcd and ZooKeeper servers (Debian's
 * etcd-server and zookeeper, started here on loopback ports with temporary directories).
 * Two pools, eu and us, two members each, with different keys so they never gossip together.
 *
 * - register() in eu → lookup() in us: p50/p99 over --trials, against the baseline of the same
 *   run: a plain put by the store's own client → lookup() in us (the store and its watch alone).
 * - store writes per member per second: idle, and while a TTL check flaps every 50 ms.
 * - recovery: the store killed; once back, time until an instance registered during the outage
 *   is in the store, and until the other pool sees it.
 * Every loop is bounded in count and time; the servers are stopped by PID at the end.
 */
import { randomBytes } from 'node:crypto';
import { parseArgs } from 'node:util';
import { type BridgeOptions, Grapevine } from '../src/index.js';
import { EtcdServer, ZkRaw, ZookeeperServer } from '../test/stores.js';
import { fmt, table } from './util.js';

const { values } = parseArgs({ options: { trials: { type: 'string', default: '20' }, stores: { type: 'string', default: 'etcd,zookeeper' } } });
const TRIALS = Math.min(500, Number(values.trials));
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

interface Rig {
  kind: string;
  bridge: () => BridgeOptions;
  put(path: string, value: string): Promise<void>;
  remove(path: string): Promise<void>;
  has(path: string): Promise<boolean>;
  kill(): Promise<void>;
  restart(): Promise<void>;
  stop(): Promise<void>;
}

async function etcdRig(): Promise<Rig> {
  const s = new EtcdServer();
  await s.start();
  // The baseline writes with the same client library, in this process, as a service would.
  const { Etcd3 } = await import('etcd3');
  const client = new Etcd3({ hosts: s.url });
  return {
    kind: 'etcd',
    bridge: () => ({ etcd: { endpoints: s.url } }),
    put: async (p, v) => void await client.put(`services/${p}`).value(v).exec(),
    remove: async (p) => void await client.delete().key(`services/${p}`).exec(),
    has: async (p) => s.entries(`services/${p}`).has(`services/${p}`),
    kill: () => s.kill(),
    restart: () => s.start(),
    async stop() {
      client.close();
      await s.stop();
    },
  };
}

async function zookeeperRig(): Promise<Rig> {
  const s = new ZookeeperServer();
  await s.start();
  let raw: ZkRaw | undefined;
  const client = async (): Promise<ZkRaw> => (raw ??= await ZkRaw.connect(s.connect));
  return {
    kind: 'zookeeper',
    bridge: () => ({ zookeeper: { connect: s.connect } }),
    put: async (p, v) => (await client()).put(`/services/${p}`, v),
    remove: async (p) => (await client()).remove(`/services/${p}`),
    has: async (p) => (await (await client()).tree('/services')).has(p),
    async kill() {
      raw?.close();
      raw = undefined;
      await s.kill();
    },
    restart: () => s.start(),
    async stop() {
      raw?.close();
      await s.stop();
    },
  };
}

/** Resolves with ms until `check` holds on a catalog change of `gv` (or at once); rejects after `timeoutMs`. */
function seen(gv: Grapevine, check: () => boolean, timeoutMs = 30_000): Promise<number> {
  const t0 = performance.now();
  return new Promise((resolve, reject) => {
    if (check()) return resolve(0);
    const timer = setTimeout(() => {
      off();
      reject(new Error(`not seen within ${timeoutMs} ms`));
    }, timeoutMs);
    const off = gv.catalog.onChange(() => {
      if (!check()) return;
      clearTimeout(timer);
      off();
      resolve(performance.now() - t0);
    });
  });
}

function quantile(xs: number[], q: number): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor(q * s.length))] as number;
}

async function writesPerSecond(gv: Grapevine, kind: string, ms: number, during?: () => void): Promise<number> {
  const writes = (): number => gv.stats().interfaces['bridges']?.[`${kind}.writes`] ?? 0;
  const before = writes();
  const t0 = performance.now();
  const timer = during === undefined ? undefined : setInterval(during, 50);
  await sleep(ms);
  clearInterval(timer);
  return (writes() - before) / ((performance.now() - t0) / 1000);
}

async function run(rig: Rig): Promise<(string | number)[][]> {
  const keys = { eu: [randomBytes(32)], us: [randomBytes(32)] };
  const members: Grapevine[] = [];
  const start = async (name: string, pool: 'eu' | 'us'): Promise<Grapevine> => {
    const gv = await Grapevine.start({ name, pool, keyring: keys[pool], bind: '127.0.0.1:0', bridges: [rig.bridge()] });
    members.push(gv);
    return gv;
  };
  try {
    const eu1 = await start('eu-1', 'eu');
    await start('eu-2', 'eu');
    await start('us-1', 'us');
    const us2 = await start('us-2', 'us');
    const viaGrapevine: number[] = [];
    const viaStore: number[] = [];
    for (let k = 0; k < TRIALS; k++) {
      const name = `svc-${k}`;
      const t0 = performance.now();
      const visible = seen(us2, () => us2.lookup(name).length > 0);
      const handle = await eu1.register({ name, port: 10_000 + k });
      await visible;
      viaGrapevine.push(performance.now() - t0);
      const gone = seen(us2, () => us2.lookup(name).length === 0);
      await handle.deregister();
      await gone;
      const raw = `raw-${k}`;
      const t1 = performance.now();
      const rawVisible = seen(us2, () => us2.lookup(raw).length > 0);
      await rig.put(raw, `127.0.0.1:${20_000 + k}`);
      await rawVisible;
      viaStore.push(performance.now() - t1);
      await rig.remove(raw);
      // The write budget (3 rounds in any 3 s) refills, so no trial's rounds wait behind the last trial's.
      await sleep(3_100);
    }
    const idle = await writesPerSecond(eu1, rig.kind, 10_000);
    const flappy = await eu1.register({ name: 'flappy', port: 9_999, check: { ttlMs: 60_000 } });
    let up = false;
    const flapping = await writesPerSecond(eu1, rig.kind, 10_000, () => ((up = !up) ? flappy.pass() : flappy.fail()));

    await rig.kill();
    await eu1.register({ name: 'during-outage', port: 9_998 });
    await sleep(2_000);
    const back = performance.now();
    const inOtherPool = seen(us2, () => us2.lookup('during-outage').length > 0, 60_000);
    await rig.restart();
    let inStore = NaN;
    for (let i = 0; i < 600 && Number.isNaN(inStore); i++) {
      if (await rig.has('during-outage/during-outage@eu-1@eu').catch(() => false)) inStore = performance.now() - back;
      else await sleep(50);
    }
    const other = await inOtherPool; // seen() counts from its call, right at `back`
    return [
      [`${rig.kind}: register() in eu → lookup() in us, ms`, fmt(quantile(viaGrapevine, 0.5)), fmt(quantile(viaGrapevine, 0.99)), `${fmt(quantile(viaGrapevine, 0.5) / quantile(viaStore, 0.5), 2)}x`],
      [`${rig.kind}: baseline, a put by the store's client → lookup() in us, ms`, fmt(quantile(viaStore, 0.5)), fmt(quantile(viaStore, 0.99)), '1.00x'],
      [`${rig.kind}: store writes per member per second, idle`, fmt(idle, 2), '', ''],
      [`${rig.kind}: store writes per member per second, check flapping every 50 ms`, fmt(flapping, 2), '', ''],
      [`${rig.kind}: after restart, outage registration in the store, ms`, fmt(inStore), '', ''],
      [`${rig.kind}: after restart, seen by the other pool, ms`, fmt(other), '', ''],
    ];
  } finally {
    await Promise.all(members.map((m) => m.close()));
    await rig.stop();
  }
}

const rows: (string | number)[][] = [['measure', 'p50 / value', 'p99', 'p50 ratio']];
for (const kind of values.stores.split(',')) rows.push(...await run(kind === 'etcd' ? await etcdRig() : await zookeeperRig()));
console.log(`\n## bridges (${TRIALS} trials each, writeIntervalMs 1000, etcd ttlS 10, ZooKeeper session 10 s)`);
console.log(table(rows));
