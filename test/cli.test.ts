/**
 * The `grapevine` command as a user meets it, run from source: usage and help, parse errors as
 * one line plus the usage (exit 2, no stack trace), --version, keygen, key files, and an agent
 * that stops on SIGTERM. Agents bind 127.0.0.1 only and are stopped by their own PID.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, test } from 'vitest';
import { freePort } from './needs.js';

const ROOT = join(import.meta.dirname, '..');
const MAIN = join(ROOT, 'src', 'cli', 'main.ts');
const dir = mkdtempSync(join(tmpdir(), 'grapevine-cli-'));
const children: ChildProcess[] = [];

afterAll(() => {
  for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
  rmSync(dir, { recursive: true, force: true });
});

interface Run { code: number | null; stdout: string; stderr: string }

function cli(args: string[], env: NodeJS.ProcessEnv = {}): Promise<Run> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, ['--import', 'tsx', MAIN, ...args], { cwd: ROOT, env: { ...process.env, GRAPEVINE_KEYRING: '', ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
    children.push(child);
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    const timer = setTimeout(() => child.kill('SIGKILL'), 20_000);
    child.once('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
  });
}

function expectUsageError(r: Run, first: RegExp): void {
  expect(r.code).toBe(2);
  expect(r.stderr.split('\n')[0]).toMatch(first);
  expect(r.stderr).toContain('usage: grapevine');
  expect(r.stderr).not.toMatch(/\n\s+at /); // no stack trace
}

describe('grapevine command line', () => {
  test('help: --help, -h, help and help <command> print usage and exit 0; every subcommand takes --help', async () => {
    const runs = await Promise.all([['--help'], ['-h'], ['help'], ['help', 'agent'], ['agent', '--help'], ['lookup', '--help'], ['members', '-h'], ['demo', '--help'], ['keygen', '--help']].map((a) => cli(a)));
    for (const r of runs) {
      expect(r.code).toBe(0);
      expect(r.stdout).toContain('usage: grapevine');
      expect(r.stderr).toBe('');
    }
    const agentHelp = runs[4]?.stdout ?? '';
    for (const flag of ['--advertise', '--protocol', '--bind', '--keyring-file', '--log-level', '--log-json', '--pool', '--etcd', '--etcd-prefix', '--zookeeper', '--zookeeper-root']) expect(agentHelp).toContain(flag);
    expect(runs[3]?.stdout).toBe(agentHelp);
  }, 60_000);

  test('mistakes: one line naming the problem, then the usage, exit 2', async () => {
    const [unknownFlag, unknownCommand, demoNodes, missingService, badService, badLevel] = await Promise.all([
      cli(['agent', '--bogus']), cli(['frobnicate']), cli(['demo', '--nodes', '50']), cli(['lookup']),
      cli(['agent', '--service', 'web']), cli(['agent', '--log-level', 'loud']),
    ]);
    expectUsageError(unknownFlag as Run, /^grapevine agent: Unknown option '--bogus'/);
    expectUsageError(unknownCommand as Run, /^grapevine: unknown command "frobnicate"/);
    expectUsageError(demoNodes as Run, /^grapevine demo: --nodes must be a whole number from 3 to 20, got "50"/);
    expectUsageError(missingService as Run, /^grapevine lookup: name the service/);
    expectUsageError(badService as Run, /^grapevine agent: --service web: expected name:port/);
    expectUsageError(badLevel as Run, /^grapevine agent: --log-level must be one of debug, info, warn, error, silent/);
    expectUsageError(await cli(['members', '--timeout', 'soon']), /^grapevine members: --timeout must be a duration such as 5s or 500ms, got "soon"/);
    expectUsageError(await cli(['agent', '--etcd-prefix', 'svc/']), /^grapevine agent: --etcd-prefix needs --etcd/);
  }, 60_000);

  test('every value is checked before the member starts, and the mistake names the flag, not the library option', async () => {
    const cases: [string[], RegExp][] = [
      [['--seed', 'not an address'], /^grapevine agent: --seed: /],
      [['--bind', '127.0.0.1:99999'], /^grapevine agent: --bind: /],
      [['--protocol', '{"probeIntervalMs":-5}'], /^grapevine agent: --protocol: probeIntervalMs: /],
      [['--http', 'nowhere'], /^grapevine agent: --http: must be "host:port"/],
      [['--dns', '127.0.0.1:0', '--dns-domain', 'bad_domain!'], /^grapevine agent: --dns-domain: not a domain name/],
      [['--service', '{"name":"web","port":8080,"check":{"http":"ftp://x","intervalMs":5000}}'], /^grapevine agent: --service \{.*\}: check.http: /],
      [['--http-tls-cert', '/nonexistent/cert.pem'], /^grapevine agent: --http-tls-cert and --http-tls-key go together/],
      [['--service', 'ok:1', '--service', '{"name":"web","port":-1}'], /^grapevine agent: --service \{"name":"web","port":-1\}: service.port: /],
    ];
    const runs = await Promise.all(cases.map(([args]) => cli(['agent', '--bind', '127.0.0.1:0', '--http', 'off', ...args])));
    runs.forEach((r, n) => {
      expectUsageError(r, cases[n]?.[1] as RegExp);
      // Nothing started: no listening line, no member.
      expect(r.stdout).toBe('');
    });
    const help = await cli(['agent', '--help']);
    expect(help.stdout).toMatch(/Exit codes: 0 .*; 2 a\s+mistake on the command line/s);
  }, 60_000);

  test('--version prints the package version', async () => {
    const r = await cli(['--version']);
    const pkg = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { version: string };
    expect(r.code).toBe(0);
    expect(r.stdout.trim()).toBe(pkg.version);
  });

  test('keygen prints a new 32-byte key, base64 or hex; bad keys in a file or the environment are named', async () => {
    const [b64, hex, again] = await Promise.all([cli(['keygen']), cli(['keygen', '--hex']), cli(['keygen'])]);
    expect(Buffer.from((b64 as Run).stdout.trim(), 'base64')).toHaveLength(32);
    expect((hex as Run).stdout.trim()).toMatch(/^[0-9a-f]{64}$/);
    expect((again as Run).stdout).not.toBe((b64 as Run).stdout);
    const file = join(dir, 'keys');
    writeFileSync(file, `# the cluster key\n${(b64 as Run).stdout}zz\n`);
    const badFile = await cli(['agent', '--bind', '127.0.0.1:0', '--keyring-file', file]);
    expectUsageError(badFile, new RegExp(`^grapevine agent: ${file} line 3: not a key: expected 64 hex digits or 32 bytes in base64 \\(44 characters\\), got 2 characters`));
    const badEnv = await cli(['agent', '--bind', '127.0.0.1:0'], { GRAPEVINE_KEYRING: 'abcd' });
    expectUsageError(badEnv, /^grapevine agent: GRAPEVINE_KEYRING key 1: not a key: .* got 4 characters/);
    const missing = await cli(['agent', '--keyring-file', join(dir, 'nope')]);
    expectUsageError(missing, /ENOENT/);
  }, 60_000);

  test('members, services and lookup ask an agent\'s HTTP API; with none there, one line and exit 1', async () => {
    const port = await freePort(); // nobody listens on it now
    const none = await cli(['members', '--http-addr', `127.0.0.1:${port}`, '--timeout', '2s']);
    expect(none.code).toBe(1);
    expect(none.stderr).toMatch(new RegExp(`^grapevine members: no agent answering at 127\\.0\\.0\\.1:${port} \\(ECONNREFUSED\\)`));
    expect(none.stderr).not.toMatch(/\n\s+at /);
  });

  test('an agent started with a key file runs encrypted, serves the HTTP API the commands use, and SIGTERM makes it leave and exit 0', async () => {
    const file = join(dir, 'good-keys');
    writeFileSync(file, `${'ab'.repeat(32)}\n`);
    const child = spawn(process.execPath, ['--import', 'tsx', MAIN, 'agent', '--name', 'sig', '--bind', '127.0.0.1:0', '--http', '127.0.0.1:0', '--keyring-file', file, '--service', 'web:8080', '--log-json'], {
      cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'],
    });
    children.push(child);
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
    for (let i = 0; i < 200 && !stdout.includes('listening on'); i++) await new Promise((r) => setTimeout(r, 50));
    expect(stdout).toMatch(/^sig listening on 127\.0\.0\.1:\d+ \(pid \d+\), HTTP API on 127\.0\.0\.1:(\d+) \(http:\/\/127\.0\.0\.1:\1\/v1\/, status page http:\/\/127\.0\.0\.1:\1\/ui\/, metrics http:\/\/127\.0\.0\.1:\1\/metrics\)/);
    const http = (/HTTP API on (\S+)/.exec(stdout) as RegExpExecArray)[1] as string;
    const [members, services, lookup, empty] = await Promise.all([
      cli(['members', '--http-addr', http]), cli(['services', '--http-addr', http]), cli(['lookup', 'web', '--http-addr', http]), cli(['lookup', 'nothing', '--http-addr', http]),
    ]);
    // A rotation through the agent, the key never on the command line.
    const next = join(dir, 'next-key');
    writeFileSync(next, `${'cd'.repeat(32)}\n`);
    const newKey = Buffer.from('cd'.repeat(32), 'hex').toString('base64');
    const oldKey = Buffer.from('ab'.repeat(32), 'hex').toString('base64');
    expect(await cli(['keyring', 'install', '--key-file', next, '--http-addr', http])).toMatchObject({ code: 0, stdout: 'installed on every live member\n' });
    expect(await cli(['keyring', 'use', '--key-file', next, '--http-addr', http])).toMatchObject({ code: 0, stdout: 'now the primary key of every live member\n' });
    expect((await cli(['keyring', 'list', '--http-addr', http])).stdout).toBe(`${newKey}  1/1 members, primary on 1\n${oldKey}  1/1 members\n`);
    expect(await cli(['keyring', 'remove', '--key-file', file, '--http-addr', http])).toMatchObject({ code: 0, stdout: 'removed from every live member\n' });
    const removeNew = await cli(['keyring', 'remove', '--key-file', next, '--http-addr', http]);
    expect([removeNew.code, removeNew.stderr]).toEqual([1, expect.stringMatching(/answered 400: Removing the primary key is not allowed/)]);
    expectUsageError(await cli(['keyring', 'install', '--http-addr', http]), /keyring install needs --key-file PATH/);
    expectUsageError(await cli(['keyring', 'spin']), /name what to do: grapevine keyring list\|install\|use\|remove/);
    // The key-value store through the agent.
    expect(await cli(['kv', 'put', 'cfg/x', 'hello there', '--flags', '5', '--http-addr', http])).toMatchObject({ code: 0, stdout: '' });
    expect(await cli(['kv', 'get', 'cfg/x', '--http-addr', http])).toMatchObject({ code: 0, stdout: 'hello there' });
    expect(await cli(['kv', 'list', 'cfg/', '--http-addr', http])).toMatchObject({ code: 0, stdout: 'cfg/x\n' });
    expect(await cli(['kv', 'delete', 'cfg/', '--recurse', '--http-addr', http])).toMatchObject({ code: 0 });
    expect(await cli(['kv', 'get', 'cfg/x', '--http-addr', http])).toMatchObject({ code: 1, stderr: 'no key cfg/x\n' });
    expectUsageError(await cli(['kv', 'get', '--http-addr', http]), /kv get needs a KEY/);
    expect(members.stdout).toMatch(/^sig\s+alive\s+127\.0\.0\.1:\d+\n$/);
    expect(services.stdout).toBe(`${'web'.padEnd(24)} \n`);
    expect(lookup.stdout).toMatch(/^127\.0\.0\.1:8080\s+passing\s+sig web/);
    expect([empty.code, empty.stderr, empty.stdout]).toEqual([1, 'no instances of nothing\n', '']);
    const started = JSON.parse(stderr.split('\n')[0] as string) as { level: string; msg: string; encrypted: boolean };
    expect(started).toMatchObject({ level: 'info', encrypted: true });
    child.kill('SIGTERM');
    const timer = setTimeout(() => child.kill('SIGKILL'), 10_000);
    expect(await exited).toBe(0);
    clearTimeout(timer);
    expect(stderr).toContain('"msg":"member sig left"');
  }, 30_000);
});
