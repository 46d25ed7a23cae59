/**
 * A member's data directory (`dataDir`; the agent's `--data-dir`): what it was told survives a
 * restart. Before the member is made, its saved name (when none is given) and its saved keyring
 * (rotations outlive the keys it was first started with, as Consul's keyring file outlives
 * -encrypt); once it runs, the registrations and checks made with `persist: true` (what the HTTP
 * API registers) are restored, and the members last seen alive are offered as seeds, so a
 * restart rejoins without any. A file that cannot be used stops the start with a DataDirError
 * naming it: nothing saved is dropped silently.
 */
import { join } from 'node:path';
import {
  DataDirError, type Extension, type ExtensionContext, type ExtensionStarter, type Grapevine, type GrapevineOptions, InvalidOptionError, lockDir, type Persisted,
  type Registration, type StandaloneCheck, StateFile,
} from '../runtime/index.js';

/** Members kept as seeds for the next start: enough to find the cluster after much of it moved. */
const SEEDS_KEPT_MAX = 256;
/** Member changes are saved at most this often (and at close). */
const MEMBERS_SAVE_MS = 5_000;

interface KeyringLike {
  keys(): Uint8Array[];
  add(key: Uint8Array): void;
  use(key: Uint8Array): void;
  remove(key: Uint8Array): void;
  onChange(listener: () => void): () => void;
}

function check(value: unknown): void {
  if (typeof value !== 'string' || value.trim() === '') throw new InvalidOptionError('dataDir', 'must be a directory path');
}

const noError = (): void => undefined;

/** Before the member is made: its saved name and keyring. */
async function prepare(value: unknown, options: GrapevineOptions): Promise<GrapevineOptions> {
  check(value);
  const dir = value as string;
  const node = await new StateFile(join(dir, 'node.json'), 'node', noError).read();
  const saved = node?.name;
  if (node !== undefined && (typeof saved !== 'string' || saved === '')) throw new DataDirError(join(dir, 'node.json'), 'has no "name"');
  const keys = await readKeys(join(dir, 'keyring.json'));
  const out = { ...options };
  if (out.name === undefined && typeof saved === 'string') out.name = saved;
  if (keys !== undefined) {
    const given = out.keyring;
    if (given !== undefined && !Array.isArray(given)) restoreInto(given as unknown as KeyringLike, keys);
    else out.keyring = keys;
  }
  return out;
}

async function readKeys(path: string): Promise<Uint8Array[] | undefined> {
  const doc = await new StateFile(path, 'keyring', noError).read();
  if (doc === undefined) return undefined;
  const list = doc.keys;
  if (!Array.isArray(list) || list.length === 0) throw new DataDirError(path, 'has no "keys" (a list of base64 keys, the primary first)');
  return list.map((k, i) => {
    const key = typeof k === 'string' ? Buffer.from(k, 'base64') : undefined;
    if (key === undefined || key.length !== 32 || key.toString('base64') !== k) throw new DataDirError(path, `key ${i + 1} is not 32 bytes of base64`);
    return new Uint8Array(key);
  });
}

/** A Keyring the caller shares: made to hold the saved keys, primary first. */
function restoreInto(ring: KeyringLike, keys: Uint8Array[]): void {
  for (const k of keys) ring.add(k);
  ring.use(keys[0] as Uint8Array);
  const wanted = new Set(keys.map((k) => Buffer.from(k).toString('base64')));
  for (const k of ring.keys()) if (!wanted.has(Buffer.from(k).toString('base64'))) ring.remove(k);
}

export const serveDataDir: ExtensionStarter = Object.assign(async (member: Grapevine, value: unknown, { logger }: ExtensionContext): Promise<Extension> => {
  check(value);
  const dir = value as string;
  const release = await lockDir(dir);
  const failed = (e: Error): void => logger.error(`data directory: ${e.message}`, { dataDir: dir });
  const node = new StateFile<{ name: string }>(join(dir, 'node.json'), 'node', failed);
  const keyring = new StateFile<{ keys: string[] }>(join(dir, 'keyring.json'), 'keyring', failed, 0o600);
  const services = new StateFile<Persisted>(join(dir, 'services.json'), 'services', failed);
  const members = new StateFile<{ members: { name: string; addr: string }[] }>(join(dir, 'members.json'), 'members', failed);
  const unsubscribe: (() => void)[] = [];
  let timer: NodeJS.Timeout | undefined;
  const saveMembers = (): void => {
    clearTimeout(timer);
    timer = undefined;
    const live = member.members().filter((m) => m.name !== member.name && (m.state === 'alive' || m.state === 'suspect'));
    members.save({ members: live.slice(0, SEEDS_KEPT_MAX).map((m) => ({ name: m.name, addr: m.addr })) });
  };
  const close = async (): Promise<void> => {
    for (const u of unsubscribe) u();
    if (timer !== undefined) saveMembers();
    await Promise.all([node, keyring, services, members].map((f) => f.flush()));
    await release();
  };
  try {
    const seeds = await savedSeeds(members);
    node.save({ name: member.name });
    const ring = member.keyring as KeyringLike | undefined;
    if (ring !== undefined) {
      const saveKeys = (): void => keyring.save({ keys: ring.keys().map((k) => Buffer.from(k).toString('base64')) });
      saveKeys();
      unsubscribe.push(ring.onChange(saveKeys));
    }
    const restored = await restore(member, services);
    if (restored > 0) logger.info(`restored ${restored} registrations and checks from ${services.path}`, { dataDir: dir });
    const saveServices = (): void => services.save(member.registrations.list());
    saveServices();
    unsubscribe.push(member.registrations.onChange(saveServices));
    const onMember = (): void => {
      timer ??= setTimeout(saveMembers, MEMBERS_SAVE_MS);
      timer.unref();
    };
    member.on('member', onMember);
    unsubscribe.push(() => member.off('member', onMember));
    return { address: dir, seeds: () => Promise.resolve(seeds), close };
  } catch (e) {
    await close();
    throw e;
  }
}, { check, prepare });

async function savedSeeds(file: StateFile<object>): Promise<string[]> {
  const doc = await file.read();
  if (doc === undefined) return [];
  const list = doc.members;
  if (!Array.isArray(list) || !list.every((m) => typeof m === 'object' && m !== null && typeof (m as { addr?: unknown }).addr === 'string')) {
    throw new DataDirError(file.path, 'has no "members" list of { name, addr }');
  }
  return list.map((m) => (m as { addr: string }).addr);
}

/** Registers what the file keeps, as it was registered; a registration the member refuses is the file's error. */
async function restore(member: Grapevine, file: StateFile<Persisted>): Promise<number> {
  const doc = await file.read();
  if (doc === undefined) return 0;
  const { services, checks } = doc as { services?: unknown; checks?: unknown };
  if (!Array.isArray(services) || !Array.isArray(checks)) throw new DataDirError(file.path, 'needs "services" and "checks" lists');
  const each = async (list: unknown[], what: string, apply: (x: never) => Promise<unknown>): Promise<void> => {
    for (const [i, x] of list.entries()) {
      try {
        await apply({ ...(x as object), persist: true } as never);
      } catch (e) {
        throw new DataDirError(file.path, `${what} ${i + 1}: ${(e as Error).message}`);
      }
    }
  };
  await each(services, 'service', (r: Registration) => member.register(r));
  await each(checks, 'check', (c: StandaloneCheck) => member.addCheck(c));
  return services.length + checks.length;
}
