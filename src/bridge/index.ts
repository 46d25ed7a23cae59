/**
 * The `bridges` option of `Grapevine.start()`: one Bridge per entry, each to an etcd cluster
 * or a ZooKeeper ensemble. Every option is checked before anything connects; a store that is
 * down at start is no error (the member starts and the bridge keeps trying).
 */
import type { BridgeCommonOptions, EtcdBridgeOptions, Extension, ExtensionContext, Grapevine, ZookeeperBridgeOptions } from '../runtime/index.js';
import { InvalidOptionError } from '../runtime/index.js';
import { Bridge, type BridgeSettings, FIRST_ROUND_MS, type Store } from './bridge.js';

export { parseEntry, curatorEntry, exportedEntry, instancePath, memberPath } from './entries.js';
export type { ExportedEntry, Parsed } from './entries.js';

type Planned = { settings: BridgeSettings; open: () => Promise<Store> };

export async function startBridges(gv: Grapevine, value: unknown, context: ExtensionContext): Promise<Extension> {
  if (!Array.isArray(value)) throw new InvalidOptionError('bridges', 'must be an array of { etcd: {...} } or { zookeeper: {...} }');
  const planned = value.map((b: unknown, i) => plan(b, `bridges[${i}]`));
  const bridges: Bridge[] = [];
  for (const p of planned) bridges.push(new Bridge(gv, await p.open(), p.settings, context.imports, context.logger));
  await Promise.all(bridges.map((b) => b.start(FIRST_ROUND_MS)));
  return {
    get stats() {
      const out: Record<string, number> = {};
      const seen = new Map<string, number>();
      bridges.forEach((b, i) => {
        const kind = planned[i]?.kind ?? 'bridge';
        const n = (seen.get(kind) ?? 0) + 1;
        seen.set(kind, n);
        for (const [k, v] of Object.entries(b.stats)) out[`${kind}${n === 1 ? '' : `#${n}`}.${k}`] = v;
      });
      return out;
    },
    async seeds() {
      return (await Promise.all(bridges.map((b) => b.seeds().catch(() => [])))).flat();
    },
    async close() {
      await Promise.all(bridges.map((b) => b.close()));
    },
  };
}

function plan(b: unknown, option: string): Planned & { kind: 'etcd' | 'zookeeper' } {
  if (b === null || typeof b !== 'object') throw new InvalidOptionError(option, 'must be { etcd: {...} } or { zookeeper: {...} }');
  const keys = Object.keys(b);
  if (keys.length !== 1 || (keys[0] !== 'etcd' && keys[0] !== 'zookeeper')) throw new InvalidOptionError(option, 'must have exactly one key, etcd or zookeeper');
  if ('etcd' in b) {
    const o = object(b.etcd, `${option}.etcd`) as EtcdBridgeOptions;
    const settings = common(o, `${option}.etcd`, ['endpoints', 'prefix', 'ttlS', 'auth', 'tls']);
    const endpoints = typeof o.endpoints === 'string' ? o.endpoints.split(',') : o.endpoints;
    if (!Array.isArray(endpoints) || endpoints.length === 0 || !endpoints.every((e) => typeof e === 'string' && /^https?:\/\/[^\s/]+\/?$/.test(e))) {
      throw new InvalidOptionError(`${option}.etcd.endpoints`, 'must be URLs such as "http://127.0.0.1:2379"');
    }
    const prefix = o.prefix ?? 'services/';
    if (typeof prefix !== 'string' || prefix.length > 256 || !prefix.endsWith('/')) throw new InvalidOptionError(`${option}.etcd.prefix`, 'must be a string ending in "/", such as "services/"');
    const ttlS = o.ttlS ?? 10;
    if (!Number.isInteger(ttlS) || ttlS < 2 || ttlS > 3_600) throw new InvalidOptionError(`${option}.etcd.ttlS`, 'must be an integer of seconds in 2..3600');
    if (o.auth !== undefined && (typeof o.auth?.username !== 'string' || typeof o.auth?.password !== 'string')) {
      throw new InvalidOptionError(`${option}.etcd.auth`, 'must be { username, password }');
    }
    const tls = o.tls === undefined ? undefined : {
      ca: pem(o.tls.ca, `${option}.etcd.tls.ca`),
      ...(o.tls.cert !== undefined ? { cert: pem(o.tls.cert, `${option}.etcd.tls.cert`) } : {}),
      ...(o.tls.key !== undefined ? { key: pem(o.tls.key, `${option}.etcd.tls.key`) } : {}),
    };
    const options = { endpoints: endpoints.map((e) => e.replace(/\/$/, '')), prefix, ttlS, ...(o.auth !== undefined ? { auth: { ...o.auth } } : {}), ...(tls !== undefined ? { tls } : {}) };
    return { kind: 'etcd', settings, open: async () => (await import('./etcd.js')).etcdStore(options) };
  }
  const o = object((b as { zookeeper: unknown }).zookeeper, `${option}.zookeeper`) as ZookeeperBridgeOptions;
  const settings = common(o, `${option}.zookeeper`, ['connect', 'root', 'sessionTimeoutMs', 'auth']);
  if (typeof o.connect !== 'string' || !/^[^\s,/]+:\d{1,5}(,[^\s,/]+:\d{1,5})*(\/\S*)?$/.test(o.connect)) {
    throw new InvalidOptionError(`${option}.zookeeper.connect`, 'must be "host:port[,host:port...]", such as "127.0.0.1:2181"');
  }
  const root = o.root ?? '/services';
  if (typeof root !== 'string' || !/^(\/[^/\s]+)+$/.test(root)) throw new InvalidOptionError(`${option}.zookeeper.root`, 'must be a znode path such as "/services"');
  const sessionTimeoutMs = o.sessionTimeoutMs ?? 10_000;
  if (!Number.isInteger(sessionTimeoutMs) || sessionTimeoutMs < 2_000 || sessionTimeoutMs > 600_000) {
    throw new InvalidOptionError(`${option}.zookeeper.sessionTimeoutMs`, 'must be an integer in 2000..600000');
  }
  if (o.auth !== undefined && (typeof o.auth?.digest !== 'string' || !o.auth.digest.includes(':'))) throw new InvalidOptionError(`${option}.zookeeper.auth`, 'must be { digest: "user:password" }');
  const options = { connect: o.connect, root, sessionTimeoutMs, ...(o.auth !== undefined ? { digest: o.auth.digest } : {}) };
  return { kind: 'zookeeper', settings, open: async () => (await import('./zookeeper.js')).zookeeperStore(options) };
}

function object(v: unknown, option: string): object {
  if (v === null || typeof v !== 'object' || Array.isArray(v)) throw new InvalidOptionError(option, 'must be an object');
  return v;
}

function common(o: BridgeCommonOptions, option: string, own: readonly string[]): BridgeSettings {
  for (const k of Object.keys(o)) {
    if (!own.includes(k) && !['export', 'import', 'seeds', 'writeIntervalMs'].includes(k)) throw new InvalidOptionError(`${option}.${k}`, 'unknown option');
  }
  for (const k of ['export', 'import', 'seeds'] as const) {
    if (o[k] !== undefined && typeof o[k] !== 'boolean') throw new InvalidOptionError(`${option}.${k}`, 'must be a boolean');
  }
  const writeIntervalMs = o.writeIntervalMs ?? 1_000;
  if (typeof writeIntervalMs !== 'number' || !Number.isFinite(writeIntervalMs) || writeIntervalMs < 0 || writeIntervalMs > 600_000) {
    throw new InvalidOptionError(`${option}.writeIntervalMs`, 'must be a number of ms in 0..600000');
  }
  return { export: o.export ?? true, import: o.import ?? true, seeds: o.seeds ?? true, writeIntervalMs };
}

function pem(v: unknown, option: string): Buffer {
  if (typeof v === 'string' && v.includes('-----BEGIN')) return Buffer.from(v);
  if (v instanceof Uint8Array) return Buffer.from(v);
  throw new InvalidOptionError(option, 'must be PEM contents (a string or bytes), not a path');
}
