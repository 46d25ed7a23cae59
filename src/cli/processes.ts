/**
 * Agents in child processes, driven over their JSON lines: the demo, the integration tests and
 * the cluster benchmark all start real members this way. Only processes started here are ever
 * signalled, by their own PID.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { KEYRING_ENV } from './keys.js';

const HERE = dirname(fileURLToPath(import.meta.url));
const FROM_SOURCE = import.meta.url.endsWith('.ts');
/** The package root, the nearest folder with a package.json (the build may bundle this file anywhere in dist/): where `tsx` resolves from. */
const ROOT = ((): string => {
  for (let d = HERE; dirname(d) !== d; d = dirname(d)) if (existsSync(join(d, 'package.json'))) return d;
  return HERE;
})();
/** The bundled CLI, the package's bin: one file to load rather than one per module. */
const BUNDLED = join(ROOT, 'dist', 'bundle', 'src', 'cli', 'main.js');

export interface AgentLine {
  /** When the agent printed it (its clock). */
  t: number;
  /** When this process read it (our clock): the time base for comparing with other systems. */
  at: number;
  ready?: { name: string; address: string; http?: string; dns?: string };
  error?: { code?: string; message: string };
  event?: string;
  member?: string;
  incarnation?: number;
  members?: { name: string; state: string; incarnation: number; addr: string }[];
  lookup?: { service: string; instances: { id: string; node: string; address: string; port: number; health: string }[] };
  service?: string;
  stats?: unknown;
  healthScore?: number;
  heapUsed?: number;
  rss?: number;
}

export interface AgentOptions {
  name: string;
  bind: string;
  seeds?: string[];
  profile?: 'lan' | 'wan' | 'local';
  protocol?: Record<string, number | boolean>;
  /** The key, hex; passed in GRAPEVINE_KEYRING, never on the command line. */
  keyHex?: string;
  /** The agent's --log-level (default error: its logs go to this process's stderr). */
  logLevel?: 'debug' | 'info' | 'warn' | 'error' | 'silent';
  /** Pass --no-retry-join: exit when no seed answers instead of starting alone. */
  noRetryJoin?: boolean;
  /** Serve the HTTP API here ("127.0.0.1:0"); default none. */
  http?: string;
  /** Serve DNS here ("127.0.0.1:0"), for the domain `dnsDomain`; default none. */
  dns?: string;
  dnsDomain?: string;
  /** Registrations, as for `grapevine agent --service` (JSON objects). */
  services?: Record<string, unknown>[];
  /** Run the bundled CLI from dist/ (after `npm run build`) instead of the TypeScript sources. */
  compiled?: boolean;
  /** More agent flags, as given ("--etcd", "http://127.0.0.1:2379"). */
  flags?: string[];
}

export class AgentProcess {
  readonly lines: AgentLine[] = [];
  readonly child: ChildProcess;
  /** Resolves with the exit code (or signal name) when the process ends. */
  readonly exited: Promise<number | string>;
  address = '';
  private waiters = new Set<() => void>();

  constructor(readonly options: AgentOptions) {
    const flags = ['agent', '--json', '--name', options.name, '--bind', options.bind, '--profile', options.profile ?? 'lan', '--log-level', options.logLevel ?? 'error', '--http', options.http ?? 'off'];
    for (const s of options.seeds ?? []) flags.push('--seed', s);
    if (options.protocol !== undefined) flags.push('--protocol', JSON.stringify(options.protocol));
    if (options.noRetryJoin === true) flags.push('--no-retry-join');
    if (options.dns !== undefined) flags.push('--dns', options.dns);
    if (options.dnsDomain !== undefined) flags.push('--dns-domain', options.dnsDomain);
    for (const s of options.services ?? []) flags.push('--service', JSON.stringify(s));
    flags.push(...options.flags ?? []);
    // Agents run here are throwaway: nothing kept between runs unless the caller names a directory.
    if (!flags.includes('--data-dir')) flags.push('--data-dir', 'off');
    const execArgs = FROM_SOURCE && options.compiled !== true ? ['--import', 'tsx', join(HERE, 'main.ts'), ...flags] : [BUNDLED, ...flags];
    const env = { ...process.env };
    delete env[KEYRING_ENV];
    if (options.keyHex !== undefined) env[KEYRING_ENV] = options.keyHex;
    this.child = spawn(process.execPath, execArgs, { cwd: ROOT, env, stdio: ['pipe', 'pipe', 'inherit'] });
    this.child.stdin?.on('error', () => undefined); // a child that already exited: nothing to tell it
    this.exited = new Promise((resolve) => this.child.once('exit', (code, signal) => {
      resolve(code ?? signal ?? -1);
      this.wake();
    }));
    createInterface({ input: this.child.stdout! }).on('line', (text) => {
      let line: AgentLine;
      try {
        line = { ...(JSON.parse(text) as AgentLine), at: Date.now() };
      } catch {
        return;
      }
      if (line.ready !== undefined) this.address = line.ready.address;
      this.lines.push(line);
      this.wake();
    });
  }

  get pid(): number {
    return this.child.pid ?? -1;
  }

  get running(): boolean {
    return this.child.exitCode === null && this.child.signalCode === null;
  }

  /** Waits until some line satisfies `match`; rejects after `timeoutMs` or if the process ends first. */
  waitFor(match: (line: AgentLine) => boolean, timeoutMs: number, from = 0): Promise<AgentLine> {
    return new Promise((resolve, reject) => {
      const check = (): boolean => {
        const found = this.lines.slice(from).find(match);
        if (found !== undefined) {
          finish();
          resolve(found);
          return true;
        }
        if (!this.running) {
          finish();
          reject(new Error(`${this.options.name} exited before the awaited line`));
          return true;
        }
        return false;
      };
      const timer = setTimeout(() => {
        finish();
        reject(new Error(`${this.options.name}: timed out after ${timeoutMs} ms`));
      }, timeoutMs);
      const finish = (): void => {
        clearTimeout(timer);
        this.waiters.delete(waiter);
      };
      const waiter = (): void => void check();
      if (!check()) this.waiters.add(waiter);
    });
  }

  /** Resolves once the agent printed `ready` (or rejects with its start error). */
  async ready(timeoutMs = 15_000): Promise<string> {
    const line = await this.waitFor((l) => l.ready !== undefined || l.error !== undefined, timeoutMs);
    if (line.error !== undefined) throw Object.assign(new Error(line.error.message), { code: line.error.code });
    return this.address;
  }

  /** Asks for the member table and waits for the answer. */
  async members(timeoutMs = 5_000): Promise<NonNullable<AgentLine['members']>> {
    const from = this.lines.length;
    this.send('members');
    const line = await this.waitFor((l) => l.members !== undefined, timeoutMs, from);
    return line.members ?? [];
  }

  /** Asks for the instances of `service` this agent knows; waits for the answer. */
  async lookup(service: string, timeoutMs = 5_000): Promise<NonNullable<AgentLine['lookup']>['instances']> {
    const from = this.lines.length;
    this.send(`lookup ${service}`);
    const line = await this.waitFor((l) => l.lookup?.service === service, timeoutMs, from);
    return line.lookup?.instances ?? [];
  }

  /** Asks for counters and memory; waits for the answer. */
  async stats(timeoutMs = 5_000): Promise<AgentLine> {
    const from = this.lines.length;
    this.send('stats');
    return this.waitFor((l) => l.stats !== undefined, timeoutMs, from);
  }

  /** The latest state this agent reported for `member` through its events. */
  lastEvent(member: string): string | undefined {
    for (let i = this.lines.length - 1; i >= 0; i--) {
      const l = this.lines[i] as AgentLine;
      if (l.member === member && l.event !== undefined) return l.event;
    }
    return undefined;
  }

  send(command: string): void {
    if (this.running) this.child.stdin?.write(`${command}\n`);
  }

  signal(sig: NodeJS.Signals): void {
    if (!this.running) return;
    try {
      process.kill(this.pid, sig);
    } catch {
      // it exited before its exit event reached us
    }
  }

  /** Ends the process: asks politely, then SIGKILLs it after `graceMs`. */
  async stop(graceMs = 2_000): Promise<void> {
    if (!this.running) return;
    this.send('close');
    const timer = setTimeout(() => this.signal('SIGKILL'), graceMs);
    await this.exited;
    clearTimeout(timer);
  }

  private wake(): void {
    for (const w of [...this.waiters]) w();
  }
}
