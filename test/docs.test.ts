/**
 * The operations docs and deploy/ files against the code they describe:
 * - every `grapevine agent` command line in README.md, docs/*.md, the systemd unit's ExecStart,
 *   the Dockerfile's ENTRYPOINT + CMD and the Kubernetes containers' args goes through the
 *   agent's own argument parsing and checks (runAgent, in this process, with Grapevine.start
 *   stubbed: the agent calls it only once every value has passed), files it names replaced by
 *   real ones of the right kind;
 * - the Kubernetes manifests parse, the headless seeds Service selects every member pod and is the
 *   name and port the members seed from and bind, and every probe (httpGet or exec) asks the port
 *   the agent serves its HTTP API on, from where that port is reachable, a path that a real member
 *   answers with 200; the Dockerfile's health check, ports and user the same way;
 * - the systemd unit has the keys it must, and passes `systemd-analyze verify` where that exists;
 * - every relative link between the README and the docs names a file that exists, and a heading
 *   there if it has an anchor; every page under docs/ is linked from the README.
 */
import { execFile, spawnSync } from 'node:child_process';
import { chmodSync, existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, normalize, relative, resolve } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, test, vi } from 'vitest';
import { parseAllDocuments } from 'yaml';
import { Grapevine, type GrapevineOptions } from '../src/index.js';
import { runAgent } from '../src/cli/agent.js';
import { HelpRequested, UsageError } from '../src/cli/args.js';
import { newKey } from '../src/cli/keys.js';
import { available, runs } from './needs.js';

const ROOT = join(import.meta.dirname, '..');
const read = (path: string): string => readFileSync(resolve(ROOT, path), 'utf8');
const PAGES = ['README.md', ...readdirSync(join(ROOT, 'docs')).filter((f) => f.endsWith('.md')).sort().map((f) => `docs/${f}`)];
const UNIT = 'deploy/systemd/grapevine.service';
const DOCKERFILE = 'deploy/docker/Dockerfile';
const MANIFESTS = readdirSync(join(ROOT, 'deploy/kubernetes')).filter((f) => f.endsWith('.yaml')).sort().map((f) => `deploy/kubernetes/${f}`);
const hasOpenssl = available('openssl', runs('openssl', ['version']), 'apt-get install -y openssl');

// ------------------------------------------------------------------ shell words and command lines

/** Splits one shell command line into words: single and double quotes, backslash escapes, `#` comments. */
function shellWords(line: string): string[] {
  const words: string[] = [];
  let word: string | undefined;
  for (let i = 0; i < line.length; i++) {
    const c = line[i] as string;
    if (c === "'") {
      const end = line.indexOf("'", i + 1);
      if (end < 0) throw new Error(`unterminated ' in: ${line}`);
      word = (word ?? '') + line.slice(i + 1, end);
      i = end;
    } else if (c === '"') {
      let j = i + 1;
      let s = '';
      for (; j < line.length && line[j] !== '"'; j++) s += line[j] === '\\' ? (line[++j] ?? '') : line[j];
      if (j >= line.length) throw new Error(`unterminated " in: ${line}`);
      word = (word ?? '') + s;
      i = j;
    } else if (c === '\\') {
      word = (word ?? '') + (line[++i] ?? '');
    } else if (/\s/.test(c)) {
      if (word !== undefined) words.push(word);
      word = undefined;
    } else if (c === '#' && word === undefined) {
      break;
    } else {
      word = (word ?? '') + c;
    }
  }
  if (word !== undefined) words.push(word);
  return words;
}

const SEPARATORS = new Set(['|', '||', '&&', ';', '&']);

/** The arguments after every `grapevine agent` (or `/path/to/grapevine agent`) in one command line. */
function agentArgs(words: string[]): string[][] {
  const out: string[][] = [];
  for (let i = 0; i + 1 < words.length; i++) {
    if (!/(^|\/)grapevine$/.test(words[i] as string) || words[i + 1] !== 'agent') continue;
    let end = i + 2;
    while (end < words.length && !SEPARATORS.has(words[end] as string)) end++;
    out.push(words.slice(i + 2, end));
  }
  return out;
}

interface CommandLine { where: string; args: string[] }

/** Every `grapevine agent` command line in the code blocks of a markdown page, continuation lines joined. */
function markdownCommandLines(page: string): CommandLine[] {
  const out: CommandLine[] = [];
  const lines = read(page).split('\n');
  let inBlock = false;
  for (let i = 0; i < lines.length; i++) {
    if (/^\s*```/.test(lines[i] as string)) {
      inBlock = !inBlock;
      continue;
    }
    if (!inBlock) continue;
    const start = i + 1;
    let line = lines[i] as string;
    while (/\\\s*$/.test(line) && i + 1 < lines.length) line = `${line.replace(/\\\s*$/, ' ')}${lines[++i] as string}`;
    // A unit file's line, as the docs quote the unit.
    line = line.replace(/^ExecStart=/, '');
    if (!/grapevine\s+agent\b/.test(line)) continue;
    for (const args of agentArgs(shellWords(line))) out.push({ where: `${page}:${start}`, args });
  }
  return out;
}

/** The systemd unit as sections of key → values (a key may repeat), continuation lines joined. */
function unitFile(text: string): Map<string, Map<string, string[]>> {
  const sections = new Map<string, Map<string, string[]>>();
  let section: Map<string, string[]> | undefined;
  const lines = text.split('\n');
  for (let i = 0; i < lines.length; i++) {
    let line = (lines[i] as string).trim();
    if (line === '' || line.startsWith('#') || line.startsWith(';')) continue;
    while (line.endsWith('\\') && i + 1 < lines.length) line = `${line.slice(0, -1)} ${(lines[++i] as string).trim()}`;
    const header = /^\[([A-Za-z]+)\]$/.exec(line);
    if (header !== null) {
      section = new Map();
      sections.set(header[1] as string, section);
      continue;
    }
    const kv = /^([A-Za-z][A-Za-z0-9]*)=(.*)$/.exec(line);
    if (kv === null || section === undefined) throw new Error(`${UNIT}: not a key=value line in a section: ${line}`);
    section.set(kv[1] as string, [...section.get(kv[1] as string) ?? [], kv[2] as string]);
  }
  return sections;
}

interface Instruction { line: number; op: string; rest: string }

/** The Dockerfile's instructions, continuation lines joined, comments dropped. */
function dockerfile(text: string): Instruction[] {
  const out: Instruction[] = [];
  const lines = text.split('\n');
  for (let i = 0; i < lines.length; i++) {
    const start = i + 1;
    let line = (lines[i] as string).trim();
    if (line === '' || line.startsWith('#')) continue;
    while (line.endsWith('\\') && i + 1 < lines.length) line = `${line.slice(0, -1).trimEnd()} ${(lines[++i] as string).trim()}`;
    const m = /^([A-Z]+)\s+(.*)$/.exec(line);
    if (m === null) throw new Error(`${DOCKERFILE}:${start}: not an instruction: ${line}`);
    out.push({ line: start, op: m[1] as string, rest: m[2] as string });
  }
  return out;
}

// ------------------------------------------------------------------ Kubernetes

type Obj = Record<string, unknown>;
const obj = (v: unknown): Obj => (v !== null && typeof v === 'object' && !Array.isArray(v) ? v as Obj : {});
const list = (v: unknown): unknown[] => (Array.isArray(v) ? v : []);

/** Example values for the downward-API fields the manifests pass into `$(VAR)` references. */
const FIELD_EXAMPLES: Record<string, string> = {
  'status.hostIP': '10.0.0.4', 'status.podIP': '10.1.0.7', 'metadata.name': 'web-5d9c7b-abcde', 'spec.nodeName': 'node-1', 'metadata.namespace': 'grapevine',
};

interface Manifest { file: string; doc: Obj }

function manifests(): Manifest[] {
  return MANIFESTS.flatMap((file) => {
    const docs = parseAllDocuments(read(file));
    if (!Array.isArray(docs)) throw new Error(`${file}: not YAML documents`);
    return docs.map((d) => {
      if (d.errors.length > 0) throw new Error(`${file}: ${d.errors.map((e) => e.message).join('; ')}`);
      return { file, doc: obj(d.toJS()) };
    });
  });
}

interface AgentContainer {
  where: string;
  podSpec: Obj;
  labels: Obj;
  container: Obj;
  args: string[];
}

/** Every container of a workload whose args start with `agent`, `$(VAR)` expanded as the kubelet does. */
function agentContainers(all: Manifest[]): AgentContainer[] {
  const out: AgentContainer[] = [];
  for (const { file, doc } of all) {
    const template = obj(obj(doc.spec).template);
    const podSpec = obj(template.spec);
    for (const c of list(podSpec.containers).map(obj)) {
      const args = list(c.args).map(String);
      if (args[0] !== 'agent') continue;
      const where = `${file} ${String(doc.kind)}/${String(obj(doc.metadata).name)} container ${String(c.name)}`;
      const env = new Map<string, string>();
      for (const e of list(c.env).map(obj)) {
        const field = obj(obj(obj(e.valueFrom).fieldRef)).fieldPath;
        const value = typeof e.value === 'string' ? e.value : FIELD_EXAMPLES[String(field)];
        if (value === undefined) throw new Error(`${where}: env ${String(e.name)}: no example value for field ${String(field)}`);
        env.set(String(e.name), value);
      }
      const expanded = args.slice(1).map((a) => a.replace(/\$\(([A-Za-z_][A-Za-z0-9_]*)\)/g, (_, name: string) => {
        const v = env.get(name);
        if (v === undefined) throw new Error(`${where}: $(${name}) is not defined in the container's env`);
        return v;
      }));
      out.push({ where, podSpec, labels: obj(obj(template.metadata).labels), container: c, args: expanded });
    }
  }
  return out;
}

// ------------------------------------------------------------------ the agent's own checks

const work = mkdtempSync(join(tmpdir(), 'grapevine-docs-'));
const fixture = (name: string): string => join(work, name);
/** Flags naming files the agent reads before it starts, and the stand-in of the right kind. */
const FILE_FLAGS: Record<string, string> = {
  '--keyring-file': 'cluster.keys', '--http-token-file': 'http.token', '--http-tls-cert': 'cert.pem', '--http-tls-key': 'key.pem', '--http-tls-ca': 'cert.pem',
};

beforeAll(async () => {
  writeFileSync(fixture('cluster.keys'), `${newKey()}\n`);
  writeFileSync(fixture('http.token'), 'a-token-for-the-docs-test\n');
  if (hasOpenssl) {
    await promisify(execFile)('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', fixture('key.pem'), '-out', fixture('cert.pem'), '-days', '1', '-subj', '/CN=127.0.0.1'], { timeout: 30_000 });
  }
});
afterAll(() => rmSync(work, { recursive: true, force: true }));

/**
 * Runs `args` through runAgent up to the point where it would start the member: the options it
 * would start with, 'help' for --help, or the usage error's message (naming the flag).
 */
async function checkAgent(args: string[]): Promise<GrapevineOptions | 'help' | string> {
  const given = args.map((a, i) => (i > 0 && FILE_FLAGS[args[i - 1] as string] !== undefined ? fixture(FILE_FLAGS[args[i - 1] as string] as string) : a));
  const saved = { keyring: process.env.GRAPEVINE_KEYRING, token: process.env.GRAPEVINE_HTTP_TOKEN, exitCode: process.exitCode };
  delete process.env.GRAPEVINE_KEYRING;
  delete process.env.GRAPEVINE_HTTP_TOKEN;
  let options: GrapevineOptions | undefined;
  const start = vi.spyOn(Grapevine, 'start').mockImplementation((o) => {
    options = o;
    return Promise.reject(new Error('not started: the docs test only checks the command line'));
  });
  const stderr = vi.spyOn(process.stderr, 'write').mockImplementation(() => true);
  try {
    await runAgent(given);
    if (options === undefined) return 'the agent returned without starting the member';
    return options;
  } catch (e) {
    if (e instanceof HelpRequested) return 'help';
    if (e instanceof UsageError) return `usage error: ${e.message}`;
    throw e;
  } finally {
    start.mockRestore();
    stderr.mockRestore();
    process.exitCode = saved.exitCode;
    if (saved.keyring !== undefined) process.env.GRAPEVINE_KEYRING = saved.keyring;
    if (saved.token !== undefined) process.env.GRAPEVINE_HTTP_TOKEN = saved.token;
  }
}

/** The options, or a failed assertion naming where the command line is and what the agent said. */
async function acceptedByAgent(line: CommandLine): Promise<GrapevineOptions> {
  if (line.args.some((a, i) => FILE_FLAGS[line.args[i - 1] as string] === 'cert.pem' && a !== '') && !hasOpenssl) {
    throw new Error(`${line.where}: needs openssl to make a certificate for --http-tls-*`);
  }
  const result = await checkAgent(line.args);
  expect(typeof result === 'string' ? result : 'accepted', `${line.where}: grapevine agent ${line.args.join(' ')}`).toMatch(/^(accepted|help)$/);
  return result as GrapevineOptions;
}

const portOf = (addr: string): number => Number(/:(\d+)$/.exec(addr)?.[1]);
const hostOf = (addr: string): string => addr.slice(0, addr.lastIndexOf(':')).replace(/^\[|\]$/g, '');
const httpBind = (o: GrapevineOptions): string | undefined => (o.http === undefined ? undefined : typeof o.http === 'string' ? o.http : o.http.bind);
const isLoopback = (host: string): boolean => host === 'localhost' || host === '::1' || /^127\./.test(host);

// ------------------------------------------------------------------ the tests

describe('agent command lines in the docs and deploy/', () => {
  test('every `grapevine agent` line in the README and docs/ passes the agent\'s argument checks', async () => {
    const lines = PAGES.flatMap(markdownCommandLines);
    // The extractor finds them: the README's first cluster, agent.md, operations, security.
    expect(lines.length, lines.map((l) => l.where).join(', ')).toBeGreaterThanOrEqual(6);
    for (const page of ['README.md', 'docs/agent.md', 'docs/operations.md', 'docs/security.md']) expect(lines.some((l) => l.where.startsWith(`${page}:`)), page).toBe(true);
    for (const line of lines) await acceptedByAgent(line);
  }, 60_000);

  test('the command lines the checker is given are really checked: mistakes are refused, naming the flag', async () => {
    expect(await checkAgent(['--bind', '10.0.0.5:7946', '--frobnicate'])).toMatch(/usage error: .*--frobnicate/);
    expect(await checkAgent(['--seed', 'dns:'])).toMatch(/usage error: --seed: /);
    expect(await checkAgent(['--http', '0.0.0.0:8500'])).toMatch(/usage error: --http: /);
    expect(await checkAgent(['--service', 'web'])).toMatch(/usage error: --service web: /);
    expect(await checkAgent(['--http-tls-cert', 'x.pem'])).toMatch(/usage error: --http-tls-cert and --http-tls-key go together/);
    expect(await checkAgent(['--help'])).toBe('help');
  });

  test('systemd: the unit has what it must, its ExecStart passes the agent\'s checks, and systemd-analyze verify accepts it', async () => {
    const text = read(UNIT);
    const unit = unitFile(text);
    for (const s of ['Unit', 'Service', 'Install']) expect(unit.has(s), `[${s}] in ${UNIT}`).toBe(true);
    const service = unit.get('Service') as Map<string, string[]>;
    const one = (key: string): string => {
      const v = service.get(key);
      expect(v?.length, `${UNIT}: one ${key}=`).toBe(1);
      return (v as string[])[0] as string;
    };
    expect(one('User')).not.toMatch(/^(root|0)$/);
    const words = shellWords(one('ExecStart'));
    expect(words[0], 'ExecStart names the installed command by its full path').toBe('/usr/local/bin/grapevine');
    const [args] = agentArgs(words);
    expect(args, `${UNIT}: ExecStart runs grapevine agent`).toBeDefined();
    const options = await acceptedByAgent({ where: `${UNIT} ExecStart`, args: args as string[] });
    // The data directory is the one systemd makes for the unit's user.
    expect(options.dataDir).toBe(`/var/lib/${one('StateDirectory')}`);
    expect(one('RestartPreventExitStatus'), 'a command-line mistake (exit 2) is not restarted').toBe('2');
    expect(unit.get('Install')?.get('WantedBy')).toEqual(['multi-user.target']);
    // The unit as quoted in operations.md is the unit.
    expect(read('docs/operations.md')).toContain(`ExecStart=${one('ExecStart')}`);

    if (!available('systemd-analyze', runs('systemd-analyze', ['--version']), 'apt-get install -y systemd')) return;
    // verify also checks that the program exists: point it at a stand-in with the same arguments.
    const dir = mkdtempSync(join(tmpdir(), 'grapevine-unit-'));
    try {
      writeFileSync(join(dir, 'grapevine'), '#!/bin/sh\nexit 0\n');
      chmodSync(join(dir, 'grapevine'), 0o755);
      const copy = join(dir, 'grapevine.service');
      writeFileSync(copy, text.replace('ExecStart=/usr/local/bin/grapevine ', `ExecStart=${join(dir, 'grapevine')} `));
      const verify = spawnSync('systemd-analyze', ['verify', '--man=no', copy], { encoding: 'utf8', timeout: 30_000 });
      expect(verify.status, `systemd-analyze verify ${UNIT}: ${verify.stderr}`).toBe(0);
      // It exits 0 on unknown keys and bad values, but says so: any word about the unit is a failure.
      const out = `${verify.stdout}${verify.stderr}`;
      expect(out.split('\n').filter((l) => l.includes('grapevine.service')), `systemd-analyze verify ${UNIT}`).toEqual([]);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  }, 60_000);

  describe('the HTTP paths the probes ask', () => {
    let member: Grapevine | undefined;
    beforeAll(async () => {
      member = await Grapevine.start({ name: 'docs-probe', bind: '127.0.0.1:0', profile: 'local', http: '127.0.0.1:0' });
    });
    afterAll(async () => member?.close());

    /** Asks a real member `path`: the status, which a probe needs to be 200. */
    async function statusOf(path: string): Promise<number> {
      const res = await fetch(`http://${member?.listening('http') as string}${path}`, { redirect: 'manual' });
      await res.arrayBuffer();
      return res.status;
    }

    /** The URL a health check or exec probe fetches, checked against where the agent serves HTTP. */
    async function checkProbeUrl(where: string, command: string, options: GrapevineOptions): Promise<void> {
      const url = /https?:\/\/[^\s'"`)]+/.exec(command)?.[0];
      expect(url, `${where}: a URL in the probe command`).toBeDefined();
      const u = new URL(url as string);
      const bind = httpBind(options);
      expect(bind, `${where}: the agent serves HTTP`).toBeDefined();
      expect(`${u.hostname}:${u.port}`, `${where}: the probe asks where the agent's --http binds`).toBe(bind);
      expect(await statusOf(u.pathname), `${where}: GET ${u.pathname}`).toBe(200);
    }

    test('Dockerfile: node:20-slim, not root, the agent\'s ports exposed, CMD checked, the health check on a served path and port', async () => {
      const ins = dockerfile(read(DOCKERFILE));
      const of = (op: string): Instruction[] => ins.filter((i) => i.op === op);
      expect(of('FROM').map((i) => i.rest)).toEqual(['node:20-slim']);
      const user = of('USER').at(-1);
      expect(user?.rest, 'a USER other than root').toBeDefined();
      expect(user?.rest).not.toMatch(/^(root|0)(:|$)/);
      const entrypoint = JSON.parse(of('ENTRYPOINT').at(-1)?.rest ?? 'null') as string[];
      const cmd = JSON.parse(of('CMD').at(-1)?.rest ?? 'null') as string[];
      const [args] = agentArgs([...entrypoint, ...cmd]);
      expect(args, `${DOCKERFILE}: ENTRYPOINT + CMD run grapevine agent`).toBeDefined();
      const options = await acceptedByAgent({ where: `${DOCKERFILE} ENTRYPOINT + CMD`, args: args as string[] });
      const gossip = portOf(options.bind ?? '0.0.0.0:7946');
      const exposed = of('EXPOSE').flatMap((i) => i.rest.split(/\s+/));
      for (const p of [`${gossip}/udp`, `${gossip}/tcp`, `${portOf(httpBind(options) as string)}/tcp`]) expect(exposed, `${DOCKERFILE}: EXPOSE ${p}`).toContain(p);
      expect(options.dataDir, 'the data directory is the volume').toBe(of('VOLUME').at(-1)?.rest);
      const health = of('HEALTHCHECK').at(-1);
      expect(health?.rest, `${DOCKERFILE}: a HEALTHCHECK`).toMatch(/CMD /);
      await checkProbeUrl(`${DOCKERFILE} HEALTHCHECK`, health?.rest as string, options);
    }, 60_000);

    test('Kubernetes: the manifests parse, the seeds Service is what members seed from and bind, probes ask served paths on reachable ports', async () => {
      const all = manifests();
      for (const { file, doc } of all) {
        expect(typeof doc.apiVersion === 'string' && typeof doc.kind === 'string' && typeof obj(doc.metadata).name === 'string', `${file}: apiVersion, kind, metadata.name`).toBe(true);
      }
      const services = all.filter((m) => m.doc.kind === 'Service').map((m) => m.doc);
      expect(services.length).toBe(1);
      const seeds = services[0] as Obj;
      const spec = obj(seeds.spec);
      expect(spec.clusterIP, 'headless').toBe('None');
      expect(spec.publishNotReadyAddresses, 'members are listed before they are ready').toBe(true);
      const gossipPorts = list(spec.ports).map(obj);
      const port = Number(gossipPorts[0]?.port);
      expect(gossipPorts.map((p) => `${String(p.port)}/${String(p.protocol)}>${String(p.targetPort ?? p.port)}`).sort()).toEqual([`${port}/TCP>${port}`, `${port}/UDP>${port}`]);
      const seedName = `dns:${String(obj(seeds.metadata).name)}.${String(obj(seeds.metadata).namespace)}.svc.cluster.local:${port}`;

      for (const { file, doc } of all) {
        const selector = obj(obj(obj(doc.spec).selector).matchLabels);
        const labels = obj(obj(obj(obj(doc.spec).template).metadata).labels);
        if (Object.keys(labels).length === 0) continue;
        for (const [k, v] of Object.entries(selector)) expect(labels[k], `${file}: the workload's selector matches its pods`).toBe(v);
        expect(obj(doc.metadata).namespace, `${file}: in the seeds Service's namespace`).toBe(obj(seeds.metadata).namespace);
      }
      const agents = agentContainers(all);
      expect(agents.map((a) => a.where).join('\n')).toMatch(/DaemonSet[\s\S]*Deployment|Deployment[\s\S]*DaemonSet/);
      for (const a of agents) {
        for (const [k, v] of Object.entries(obj(spec.selector))) expect(a.labels[k], `${a.where}: its pod is selected by the seeds Service`).toBe(v);
        const options = await acceptedByAgent({ where: a.where, args: a.args });
        expect(options.seeds, `${a.where}: seeds from the headless Service`).toContain(seedName);
        expect(portOf(options.bind as string), `${a.where}: binds the Service's port`).toBe(port);
        const declared = list(a.container.ports).map(obj).map((p) => `${String(p.containerPort)}/${String(p.protocol ?? 'TCP')}`);
        for (const p of [`${port}/UDP`, `${port}/TCP`]) expect(declared, `${a.where}: containerPort ${p}`).toContain(p);
        // Files and directories the agent is given are mounted there.
        const mounts = list(a.container.volumeMounts).map(obj).map((m) => String(m.mountPath));
        const keyring = a.args[a.args.indexOf('--keyring-file') + 1];
        if (a.args.includes('--keyring-file')) expect(mounts, `${a.where}: the keyring file's folder is mounted`).toContain(dirname(keyring as string));
        if (options.dataDir !== undefined) expect(mounts, `${a.where}: the data directory is mounted`).toContain(options.dataDir);

        const bind = httpBind(options) as string;
        expect(bind, `${a.where}: serves HTTP, which the probes ask`).toBeDefined();
        for (const kind of ['livenessProbe', 'readinessProbe']) {
          const probe = obj(a.container[kind]);
          const where = `${a.where} ${kind}`;
          if (probe.httpGet !== undefined) {
            const get = obj(probe.httpGet);
            expect(String(get.port), `${where}: the agent's HTTP port`).toBe(String(portOf(bind)));
            // The kubelet dials the pod IP unless told a host: a loopback-bound API is reachable
            // from the kubelet only on the node's own network, at 127.0.0.1.
            if (isLoopback(hostOf(bind))) {
              expect(a.podSpec.hostNetwork, `${where}: a loopback API is reachable by the kubelet only with hostNetwork`).toBe(true);
              expect(get.host, `${where}: host`).toBe(hostOf(bind));
            }
            expect(await statusOf(String(get.path)), `${where}: GET ${String(get.path)}`).toBe(200);
          } else {
            const command = list(obj(probe.exec).command).map(String);
            expect(command.length, `${where}: httpGet or exec`).toBeGreaterThan(0);
            await checkProbeUrl(where, command.join(' '), options);
          }
        }
      }
    }, 60_000);
  });
});

// ------------------------------------------------------------------ links

/** GitHub's anchor for a heading: lower case, punctuation dropped, spaces to hyphens. */
function slug(heading: string): string {
  return heading.trim().toLowerCase().replace(/[^\p{L}\p{N}\s_-]/gu, '').replace(/\s/g, '-');
}

function anchors(page: string): Set<string> {
  const seen = new Map<string, number>();
  const out = new Set<string>();
  let inBlock = false;
  for (const line of read(page).split('\n')) {
    if (/^\s*```/.test(line)) inBlock = !inBlock;
    const m = inBlock ? null : /^#{1,6}\s+(.*)$/.exec(line);
    if (m === null) continue;
    const base = slug(m[1] as string);
    const n = seen.get(base) ?? 0;
    seen.set(base, n + 1);
    out.add(n === 0 ? base : `${base}-${n}`);
  }
  return out;
}

/** Every relative markdown link of a page, outside code: [text](target), with its line. */
function links(page: string): { line: number; target: string }[] {
  const out: { line: number; target: string }[] = [];
  let inBlock = false;
  read(page).split('\n').forEach((line, i) => {
    if (/^\s*```/.test(line)) inBlock = !inBlock;
    if (inBlock) return;
    const prose = line.replace(/`[^`]*`/g, '');
    for (const m of prose.matchAll(/\]\(([^)\s]+)\)/g)) {
      const target = m[1] as string;
      if (!/^[a-z]+:/.test(target)) out.push({ line: i + 1, target });
    }
  });
  return out;
}

describe('links between the docs', () => {
  test('every relative link names a file that exists, and a heading there when it has an anchor', () => {
    const broken: string[] = [];
    let count = 0;
    for (const page of PAGES) {
      for (const { line, target } of links(page)) {
        count++;
        const [path, anchor] = target.split('#') as [string, string | undefined];
        const file = path === '' ? page : normalize(join(dirname(page), path));
        if (relative(ROOT, join(ROOT, file)).startsWith('..') || !existsSync(join(ROOT, file))) {
          broken.push(`${page}:${line}: ${target}: no such file`);
          continue;
        }
        if (anchor !== undefined && (!file.endsWith('.md') || !anchors(file).has(anchor))) broken.push(`${page}:${line}: ${target}: no such heading in ${file}`);
      }
    }
    expect(count).toBeGreaterThan(30);
    expect(broken).toEqual([]);
  });

  test('every page under docs/ is linked from the README', () => {
    const linked = new Set(links('README.md').map((l) => normalize(l.target.split('#')[0] as string)));
    expect(PAGES.filter((p) => p !== 'README.md' && !linked.has(p))).toEqual([]);
  });

  test('the link checker finds what is broken', () => {
    const dir = mkdtempSync(join(tmpdir(), 'grapevine-links-'));
    try {
      expect(slug('Key rotation: `grapevine keyring`')).toBe('key-rotation-grapevine-keyring');
      expect(slug('The Catalog seam (`src/registry/catalog.ts`)')).toBe('the-catalog-seam-srcregistrycatalogts');
      writeFileSync(join(dir, 'a.md'), '# A page\n\nSee [b](b.md), [a heading](#a-page), [none](#nowhere) and `[code](ignored.md)`.\n');
      const page = join(dir, 'a.md');
      expect(links(page).map((l) => l.target)).toEqual(['b.md', '#a-page', '#nowhere']);
      expect(anchors(page).has('a-page')).toBe(true);
      expect(anchors(page).has('nowhere')).toBe(false);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
