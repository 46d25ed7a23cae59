/**
 * Real etcd and ZooKeeper servers for the bridge tests (Debian's etcd-server and zookeeper):
 * each on free loopback ports with a temporary data directory, started, killed and restarted by
 * PID, its data kept across a restart as a real server's would be.
 */
import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createConnection } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { available, freePort, runs, stopProgram } from './needs.js';

export const ETCD = '/usr/bin/etcd';
export const ETCDCTL = '/usr/bin/etcdctl';
export const ZK_SERVER = '/usr/share/zookeeper/bin/zkServer.sh';

export const hasEtcd = (): boolean => available('etcd and etcdctl', () => {
  runs(ETCD, ['--version'])();
  runs(ETCDCTL, ['version'])();
}, 'apt-get install -y etcd-server etcd-client');

export const hasZookeeper = (): boolean => available('ZooKeeper', runs('/bin/sh', ['-c', `test -x ${ZK_SERVER} && command -v java`]), 'apt-get install -y zookeeper default-jre-headless');

/** Resolves once something accepts TCP connections on 127.0.0.1:port; throws after `timeoutMs`. */
async function listening(port: number, timeoutMs: number, child: ChildProcess, name: string): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (child.exitCode !== null) throw new Error(`${name} exited with ${child.exitCode}`);
    const ok = await new Promise<boolean>((resolve) => {
      const s = createConnection({ host: '127.0.0.1', port }, () => {
        s.destroy();
        resolve(true);
      });
      s.on('error', () => resolve(false));
    });
    if (ok) return;
    if (Date.now() > deadline) throw new Error(`${name} did not listen on ${port} within ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

abstract class Server {
  protected child: ChildProcess | undefined;
  readonly dir = mkdtempSync(join(tmpdir(), 'grapevine-store-'));
  port = 0;

  protected abstract spawn(): ChildProcess;
  protected abstract readonly name: string;

  async start(): Promise<void> {
    if (this.port === 0) this.port = await freePort();
    this.child = this.spawn();
    await listening(this.port, 30_000, this.child, this.name);
  }

  /** SIGKILL: no goodbye to clients, as a crash. */
  async kill(): Promise<void> {
    const child = this.child;
    if (child?.pid === undefined || child.exitCode !== null || child.signalCode !== null) return;
    const exited = new Promise((r) => child.once('exit', r));
    process.kill(child.pid, 'SIGKILL');
    await exited;
  }

  /** Kills and starts again on the same ports; `wipe` loses the data too (a store rebuilt empty). */
  async restart(wipe: boolean): Promise<void> {
    await this.kill();
    if (wipe) rmSync(join(this.dir, 'data'), { recursive: true, force: true });
    await this.start();
  }

  async stop(): Promise<void> {
    await stopProgram(this.child);
    rmSync(this.dir, { recursive: true, force: true });
  }
}

export class EtcdServer extends Server {
  protected readonly name = 'etcd';
  private peerPort = 0;
  /** The CA's PEM when the server speaks TLS (`tls: true`): a CA and a certificate for 127.0.0.1 made with openssl. */
  ca: string | undefined;
  /** "user:password" for etcdctl once auth is on. */
  private user: string | undefined;

  constructor(private readonly tls = false) {
    super();
  }

  get url(): string {
    return `${this.tls ? 'https' : 'http'}://127.0.0.1:${this.port}`;
  }

  protected spawn(): ChildProcess {
    return spawn(ETCD, [
      '--name', 't', '--data-dir', join(this.dir, 'data'),
      '--listen-client-urls', this.url, '--advertise-client-urls', this.url,
      '--listen-peer-urls', `http://127.0.0.1:${this.peerPort}`, '--initial-advertise-peer-urls', `http://127.0.0.1:${this.peerPort}`,
      '--initial-cluster', `t=http://127.0.0.1:${this.peerPort}`, '--log-level', 'error',
      ...(this.tls ? ['--cert-file', join(this.dir, 'server.pem'), '--key-file', join(this.dir, 'server.key')] : []),
    ], { stdio: 'ignore' });
  }

  /** Turns on password auth with a root user. */
  enableAuth(password: string): void {
    this.ctl('user', 'add', 'root', `--new-user-password=${password}`);
    this.ctl('auth', 'enable');
    this.user = `root:${password}`;
  }

  private makeCertificates(): void {
    const openssl = (...args: string[]): void => void execFileSync('openssl', args, { cwd: this.dir, stdio: 'ignore', timeout: 20_000 });
    const ec = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes'];
    openssl('req', '-x509', ...ec, '-keyout', 'ca.key', '-out', 'ca.pem', '-days', '1', '-subj', '/CN=grapevine-test-ca');
    openssl('req', ...ec, '-keyout', 'server.key', '-out', 'server.csr', '-subj', '/CN=127.0.0.1');
    writeFileSync(join(this.dir, 'san.ext'), 'subjectAltName=IP:127.0.0.1\n');
    openssl('x509', '-req', '-in', 'server.csr', '-CA', 'ca.pem', '-CAkey', 'ca.key', '-CAcreateserial', '-out', 'server.pem', '-days', '1', '-extfile', 'san.ext');
    this.ca = readFileSync(join(this.dir, 'ca.pem'), 'utf8');
  }

  override async start(): Promise<void> {
    if (this.peerPort === 0) this.peerPort = await freePort();
    if (this.tls && this.ca === undefined) this.makeCertificates();
    await super.start();
  }

  /** etcdctl against this server; its stdout. */
  ctl(...args: string[]): string {
    const extra = [...(this.ca !== undefined ? ['--cacert', join(this.dir, 'ca.pem')] : []), ...(this.user !== undefined ? ['--user', this.user] : [])];
    return execFileSync(ETCDCTL, ['--endpoints', this.url, ...extra, ...args], { env: { ...process.env, ETCDCTL_API: '3' }, encoding: 'utf8', timeout: 10_000 });
  }

  /** Keys and values under a prefix, by etcdctl. */
  entries(prefix: string): Map<string, string> {
    const lines = this.ctl('get', '--prefix', prefix).split('\n').filter((l) => l !== '');
    const out = new Map<string, string>();
    for (let i = 0; i + 1 < lines.length; i += 2) out.set(lines[i] as string, lines[i + 1] as string);
    return out;
  }
}

export class ZookeeperServer extends Server {
  protected readonly name = 'ZooKeeper';

  get connect(): string {
    return `127.0.0.1:${this.port}`;
  }

  protected spawn(): ChildProcess {
    const cfg = join(this.dir, 'zoo.cfg');
    // tickTime 500 ms lets tests ask for 2 s sessions (ZooKeeper allows 2 to 20 ticks by default; the max is raised).
    writeFileSync(cfg, [
      'tickTime=500', `dataDir=${join(this.dir, 'data')}`, `clientPort=${this.port}`, 'clientPortAddress=127.0.0.1',
      'maxSessionTimeout=60000', 'admin.enableServer=false', '',
    ].join('\n'));
    return spawn(ZK_SERVER, ['start-foreground', cfg], { stdio: 'ignore', env: { ...process.env, ZOO_LOG_DIR: this.dir } });
  }
}

type ZkClient = import('node-zookeeper-client').Client;

/** A plain ZooKeeper client for tests: writes znodes as other tools would, and reads the tree back. */
export class ZkRaw {
  private constructor(private readonly c: ZkClient) {}

  static async connect(connect: string, timeoutMs = 10_000): Promise<ZkRaw> {
    const zk = (await import('node-zookeeper-client')).default;
    const c = zk.createClient(connect, { sessionTimeout: 10_000 });
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => {
        c.close();
        reject(new Error('ZooKeeper: no connection'));
      }, timeoutMs);
      c.once('connected', () => {
        clearTimeout(timer);
        resolve();
      });
      c.connect();
    });
    return new ZkRaw(c);
  }

  private call<T>(fn: (cb: (e: unknown, r: T) => void) => void): Promise<T> {
    return new Promise((resolve, reject) => fn((e, r) => (e ? reject(e as Error) : resolve(r))));
  }

  /** A persistent znode at `path` holding `value` (parents created empty). */
  async put(path: string, value: string): Promise<void> {
    await this.call<string>((cb) => this.c.mkdirp(path.slice(0, path.lastIndexOf('/')) || '/', cb));
    await this.call<string>((cb) => this.c.create(path, Buffer.from(value), cb)).catch(async () => {
      await this.call((cb) => this.c.setData(path, Buffer.from(value), cb));
    });
  }

  async remove(path: string): Promise<void> {
    await this.call<void>((cb) => this.c.remove(path, cb)).catch(() => undefined);
  }

  /** Every znode under `root` (relative path → data as text), empty directories included. */
  async tree(root: string): Promise<Map<string, string>> {
    const out = new Map<string, string>();
    const walk = async (path: string): Promise<void> => {
      const [data, kids] = await Promise.all([
        this.call<Buffer | undefined>((cb) => this.c.getData(path, cb)).catch(() => undefined),
        this.call<string[]>((cb) => this.c.getChildren(path, cb)).catch(() => [] as string[]),
      ]);
      if (path !== root) out.set(path.slice(root.length + 1), data?.toString('utf8') ?? '');
      for (const k of kids) await walk(`${path}/${k}`);
    };
    await walk(root);
    return out;
  }

  close(): void {
    this.c.close();
  }
}
