/**
 * Files a member keeps in its data directory (src/persist/, the key-value store's snapshot): JSON documents that name their kind and format, written
 * atomically (a temporary file, fsync, rename, fsync of the directory) so a crash leaves the
 * old version or the new one, never half of one, and a lock naming the process that uses it.
 */
import { mkdir, open, readFile, rename, rm } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { GrapevineError } from '../core/errors.js';

/** A data directory file that cannot be used: unreadable, corrupt, of another kind or format, or a directory in use. `file` names it. */
export class DataDirError extends GrapevineError {
  constructor(readonly file: string, reason: string) {
    super('grapevine.data-dir', `${file}: ${reason}`);
  }
}

const FORMAT = 1;

/** One JSON document `{ grapevine: kind, format: 1, ...body }`; saves are coalesced and never overlap. */
export class StateFile<T extends object> {
  private pending: T | undefined;
  private writing: Promise<void> = Promise.resolve();

  constructor(
    readonly path: string,
    private readonly kind: string,
    /** What a failed save is reported to (the process goes on; the next save tries again). */
    private readonly onError: (e: Error) => void,
    private readonly mode = 0o644,
  ) {}

  /** The document's body, undefined if there is no file; DataDirError if it is not one of ours. */
  async read(): Promise<Record<string, unknown> | undefined> {
    let text: string;
    try {
      text = await readFile(this.path, 'utf8');
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
      throw new DataDirError(this.path, `cannot be read (${(e as Error).message})`);
    }
    let doc: unknown;
    try {
      doc = JSON.parse(text);
    } catch (e) {
      throw new DataDirError(this.path, `is not JSON (${(e as Error).message}); move it away to start without it`);
    }
    const header = doc as { grapevine?: unknown; format?: unknown } | null;
    if (header === null || typeof header !== 'object' || header.grapevine !== this.kind) {
      throw new DataDirError(this.path, `is not a grapevine ${this.kind} file (it should start {"grapevine":"${this.kind}","format":${FORMAT}})`);
    }
    if (header.format !== FORMAT) throw new DataDirError(this.path, `has format ${JSON.stringify(header.format)}; this version of grapevine reads format ${FORMAT}`);
    return doc as Record<string, unknown>;
  }

  /** Writes `body` soon; a later save before that replaces it. */
  save(body: T): void {
    const idle = this.pending === undefined;
    this.pending = body;
    if (idle) this.writing = this.writing.then(() => this.writePending());
  }

  /** Resolves once every save so far is on disk (or has failed and been reported). */
  flush(): Promise<void> {
    return this.writing;
  }

  private async writePending(): Promise<void> {
    const body = this.pending;
    this.pending = undefined;
    if (body === undefined) return;
    try {
      await writeAtomic(this.path, `${JSON.stringify({ grapevine: this.kind, format: FORMAT, ...body }, null, 1)}\n`, this.mode);
    } catch (e) {
      this.onError(new DataDirError(this.path, `could not be written (${(e as Error).message})`));
    }
  }
}

async function writeAtomic(path: string, text: string, mode: number): Promise<void> {
  const tmp = `${path}.${process.pid}.tmp`;
  const file = await open(tmp, 'w', mode);
  try {
    await file.writeFile(text);
    await file.sync();
  } finally {
    await file.close();
  }
  await rename(tmp, path);
  const dir = await open(dirname(path), 'r');
  try {
    await dir.sync();
  } finally {
    await dir.close();
  }
}

/** Creates `dir` (owner only: it holds the keyring) and takes its lock; DataDirError if a live process holds it. Returns the release. */
export async function lockDir(dir: string): Promise<() => Promise<void>> {
  try {
    await mkdir(dir, { recursive: true, mode: 0o700 });
  } catch (e) {
    throw new DataDirError(dir, `cannot be created (${(e as Error).message})`);
  }
  const path = join(dir, 'lock');
  const release = async (): Promise<void> => {
    await rm(path, { force: true });
  };
  for (let attempt = 0; attempt < 2; attempt++) {
    try {
      const file = await open(path, 'wx', 0o644);
      await file.writeFile(`${process.pid}\n`);
      await file.close();
      return release;
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw new DataDirError(path, `cannot be created (${(e as Error).message})`);
    }
    const pid = Number((await readFile(path, 'utf8').catch(() => '')).trim());
    if (Number.isInteger(pid) && pid > 0 && running(pid)) {
      throw new DataDirError(dir, `is in use by process ${pid}${pid === process.pid ? ' (this one: another member)' : ''}; give each member its own data directory`);
    }
    // Left by a process that is gone.
    await rm(path, { force: true });
  }
  throw new DataDirError(path, 'could not be taken');
}

function running(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}
