/**
 * `grapevine agent`: runs one member in this process, for services that are not written for
 * Node. `--service` registers an instance ("name:port", or a JSON registration with a health
 * check). Logs go to stderr (`--log-level`, `--log-json`). With --json, stdout carries one JSON
 * object per line ({"ready":...} once joined, then every member and service event) and stdin
 * answers "members", "stats", "services" and "lookup <service>"; "leave" and "close" end it.
 * SIGTERM and SIGINT leave gracefully. The demo, the integration tests and the cluster
 * benchmark drive agents this way.
 */
import { homedir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { parseArgs } from 'node:util';
import type { ProfileName } from '../core/config.js';
import { checkOptions, Grapevine, type GrapevineOptions, type HttpTls, InvalidOptionError, LOG_LEVELS, type LogFields, type Logger, type LogLevel, type Registration } from '../runtime/index.js';
import { HELP, parse, UsageError } from './args.js';
import { loadKeyring, readSecret } from './keys.js';
import { TOKEN_ENV } from './query.js';

export const AGENT_USAGE = `usage: grapevine agent [options]

Runs one member of a grapevine cluster in this process.

  --name NAME            unique member name (default: <hostname>-<port>)
  --bind HOST:PORT       where to listen, UDP and TCP (default 0.0.0.0:7946; IPv6 as [::1]:7946)
  --advertise HOST:PORT  the address other members should use, if not the bound one (NAT, containers)
  --seed HOST:PORT       a member to join through; repeat for several
  --no-retry-join        exit if no seed answers, instead of running alone and retrying
  --profile lan|wan|local  protocol timing preset (default lan)
  --protocol JSON        protocol overrides, e.g. '{"probeIntervalMs":500}'
  --keyring-file PATH    encryption keys, one per line (hex or base64); the first seals.
                         Or set GRAPEVINE_KEYRING=key1,key2. "grapevine keygen" makes one.
  --service SPEC         register a service: name:port, or JSON such as
                         '{"name":"web","port":8080,"check":{"http":"http://127.0.0.1:8080/health","intervalMs":5000}}'
  --meta KEY=VALUE       node metadata; repeat for several
  --data-dir DIR         keep what the HTTP API registered, the name, the keyring as rotated and
                         the members last seen here across restarts ("off": nothing kept). Default
                         $XDG_STATE_HOME/grapevine/agent-PORT (~/.local/state/...) when --bind
                         names a port, none with port 0
  --http HOST:PORT       serve the Consul-compatible HTTP API here (default 127.0.0.1:8500; "off": none)
  --http-token-file PATH a token the HTTP API requires for writes and reads (or $GRAPEVINE_HTTP_TOKEN)
  --http-tls-cert PATH   serve the HTTP API over HTTPS with this PEM certificate chain ...
  --http-tls-key PATH    ... and this PEM key
  --http-tls-ca PATH     a PEM CA to verify client certificates with
  --http-require-client-cert  only clients with a certificate from that CA (it stands for the token)
  --dns HOST:PORT        serve DNS here (A, AAAA, SRV, TXT), e.g. 127.0.0.1:8600; default off
  --dns-domain NAME      the DNS domain (default grapevine; "consul" for Consul-era tooling)
  --pool NAME            this gossip pool's name (default "default"); pools federate through a store
  --etcd URL[,URL]       bridge to etcd: export this member's services, import the others, find seeds
  --etcd-prefix P        the etcd key prefix (default services/)
  --zookeeper HOST:PORT[,HOST:PORT]  bridge to ZooKeeper, as --etcd (Curator-compatible znodes)
  --zookeeper-root R     the ZooKeeper root znode (default /services)
  --log-level LEVEL      debug, info, warn, error or silent (default info); logs go to stderr
  --log-json             log one JSON object per line
  --json                 machine interface: JSON events on stdout, commands on stdin
  -h, --help             this text

Every value is checked before the member starts. Exit codes: 0 left or closed as asked; 2 a
mistake on the command line (the flag is named); 3 could not start (address in use, no seed
answered with --no-retry-join, the name taken by a live member, an interface that would not
start); 1 any other failure.
`;

export async function runAgent(argv: string[]): Promise<void> {
  // Taken first: the launcher may be gone by the time the member has started.
  const launcher = process.ppid;
  const { values } = parse(() => parseArgs({
    args: argv,
    strict: true,
    allowNegative: true,
    options: {
      ...HELP,
      name: { type: 'string' },
      bind: { type: 'string', default: '0.0.0.0:7946' },
      advertise: { type: 'string' },
      seed: { type: 'string', multiple: true, default: [] },
      // An agent outlives its seeds' restarts: it starts alone and joins them when they answer.
      'retry-join': { type: 'boolean', default: true },
      profile: { type: 'string', default: 'lan' },
      protocol: { type: 'string' },
      'keyring-file': { type: 'string' },
      json: { type: 'boolean', default: false },
      service: { type: 'string', multiple: true, default: [] },
      meta: { type: 'string', multiple: true, default: [] },
      'data-dir': { type: 'string' },
      http: { type: 'string', default: '127.0.0.1:8500' },
      'http-token-file': { type: 'string' },
      'http-tls-cert': { type: 'string' },
      'http-tls-key': { type: 'string' },
      'http-tls-ca': { type: 'string' },
      'http-require-client-cert': { type: 'boolean', default: false },
      dns: { type: 'string' },
      'dns-domain': { type: 'string' },
      pool: { type: 'string' },
      etcd: { type: 'string' },
      'etcd-prefix': { type: 'string' },
      zookeeper: { type: 'string' },
      'zookeeper-root': { type: 'string' },
      'log-level': { type: 'string', default: 'info' },
      'log-json': { type: 'boolean', default: false },
    },
  }));
  const logger = stderrLogger(values['log-level'], values['log-json']);
  const protocol = values.protocol === undefined ? undefined : parseJson(values.protocol, '--protocol') as Record<string, number>;
  const services = values.service.map(parseService);
  const meta = parseMeta(values.meta);
  const keyring = loadKeyring(values['keyring-file']);
  const token = values['http-token-file'] !== undefined ? readSecret(values['http-token-file'], '--http-token-file').trim() : process.env[TOKEN_ENV];
  const tls = httpTls(values['http-tls-cert'], values['http-tls-key'], values['http-tls-ca'], values['http-require-client-cert']);
  const http = values.http === 'off' ? undefined : { bind: values.http, ...(token !== undefined && token !== '' ? { token } : {}), ...(tls !== undefined ? { tls } : {}) };
  const bridges = [
    ...(values.etcd !== undefined ? [{ etcd: { endpoints: values.etcd, ...(values['etcd-prefix'] !== undefined ? { prefix: values['etcd-prefix'] } : {}) } }] : []),
    ...(values.zookeeper !== undefined ? [{ zookeeper: { connect: values.zookeeper, ...(values['zookeeper-root'] !== undefined ? { root: values['zookeeper-root'] } : {}) } }] : []),
  ];
  if (values['etcd-prefix'] !== undefined && values.etcd === undefined) throw new UsageError('--etcd-prefix needs --etcd');
  if (values['zookeeper-root'] !== undefined && values.zookeeper === undefined) throw new UsageError('--zookeeper-root needs --zookeeper');
  const dataDir = agentDataDir(values['data-dir'], values.bind);
  const json = values.json;
  const print = (o: Record<string, unknown>): void => {
    if (json) process.stdout.write(`${JSON.stringify({ t: Date.now(), ...o })}\n`);
  };
  const options: GrapevineOptions = {
      ...(values.name !== undefined ? { name: values.name } : {}),
      bind: values.bind,
      ...(values.advertise !== undefined ? { advertise: values.advertise } : {}),
      seeds: values.seed,
      retryJoin: values['retry-join'],
      profile: values.profile as ProfileName,
      ...(protocol !== undefined ? { protocol } : {}),
      ...(keyring !== undefined ? { keyring } : {}),
      ...(meta !== undefined ? { meta } : {}),
      ...(http !== undefined ? { http } : {}),
      ...(values.dns !== undefined ? { dns: { bind: values.dns, ...(values['dns-domain'] !== undefined ? { domain: values['dns-domain'] } : {}) } } : {}),
      ...(values.pool !== undefined ? { pool: values.pool } : {}),
      ...(bridges.length > 0 ? { bridges } : {}),
      ...(dataDir !== undefined ? { dataDir } : {}),
      logger,
      // Our stderr logger filters by --log-level itself; the member passes it everything it would log.
      logLevel: 'debug',
  };
  // Every value is checked before anything binds: a mistake is a usage error naming its flag.
  const asUsage = (flag?: string) => (e: unknown): never => {
    throw e instanceof InvalidOptionError ? new UsageError(flagged(e, flag)) : e;
  };
  // Protocol overrides are named by their own key ("probeIntervalMs"): checked apart, under --protocol.
  if (protocol !== undefined) await checkOptions({ protocol }).catch(asUsage('--protocol'));
  await checkOptions(options).catch(asUsage());
  for (const [n, registration] of services.entries()) await checkOptions({}, [registration]).catch(asUsage(`--service ${values.service[n] as string}`));
  let gv: Grapevine;
  try {
    gv = await Grapevine.start(options);
  } catch (e) {
    fail(e, print);
    return;
  }
  try {
    for (const registration of services) await gv.register(registration);
  } catch (e) {
    fail(e, print);
    await gv.close();
    return;
  }
  gv.on('service', ({ type, instance }) => {
    print({ service: type, instance });
    logger.info(`service ${instance.service} ${instance.id} on ${instance.node} ${type} (${instance.health})`, { service: instance.service, id: instance.id, node: instance.node, change: type, health: instance.health });
  });
  gv.on('member', ({ type, member }) => print({ event: type, member: member.name, incarnation: member.incarnation }));
  print({ ready: { name: gv.name, address: gv.address, ...(http !== undefined ? { http: gv.listening('http') } : {}), ...(values.dns !== undefined ? { dns: gv.listening('dns') } : {}) } });
  if (!json) process.stdout.write(`${startLine(gv, http !== undefined, tls !== undefined, values.dns !== undefined)}\n`);
  // Members learned while joining were announced before anyone could listen: report them now.
  for (const m of gv.members()) if (m.name !== gv.name) print({ event: 'joined', member: m.name, incarnation: m.incarnation });
  const rl = createInterface({ input: process.stdin });
  let stopping = false;
  const stop = (how: 'leave' | 'close'): void => {
    if (stopping) return;
    stopping = true;
    rl.close();
    void (how === 'leave' ? gv.leave() : gv.close()).then(() => process.exit(0));
  };
  if (json) rl.on('line', (line) => answer(gv, line.trim(), print, stop));
  process.once('SIGTERM', () => stop('leave'));
  process.once('SIGINT', () => stop('leave'));
  followLauncher(launcher, () => stop('leave'));
}

/** How often an agent started by npx or `npm run` checks that its launcher is still there. */
const LAUNCHER_CHECK_MS = 500;

/**
 * Under `npx grapevine agent` (or an npm script) npm runs us through `sh -c`, and a SIGTERM to
 * npm reaches only that shell, which dies without passing it on: the agent would be orphaned,
 * still gossiping. Such an agent leaves when its parent goes away. Started any other way
 * (directly, under nohup or a supervisor) it keeps running as a daemon would.
 */
function followLauncher(parent: number, leave: () => void): void {
  if (process.env.npm_command !== 'exec' && process.env.npm_command !== 'run-script') return;
  const check = (): void => {
    if (process.ppid === parent) return;
    clearInterval(timer);
    leave();
  };
  const timer = setInterval(check, LAUNCHER_CHECK_MS);
  timer.unref();
  check();
}

function answer(gv: Grapevine, cmd: string, print: (o: Record<string, unknown>) => void, stop: (how: 'leave' | 'close') => void): void {
  if (cmd === 'members') {
    print({ members: gv.members().map((m) => ({ name: m.name, state: m.state, incarnation: m.incarnation, addr: m.addr })) });
  } else if (cmd.startsWith('lookup ')) {
    const service = cmd.slice('lookup '.length).trim();
    print({ lookup: { service, instances: gv.lookup(service) } });
  } else if (cmd === 'services') {
    print({ services: gv.services() });
  } else if (cmd === 'stats') {
    const mem = process.memoryUsage();
    print({ stats: gv.stats(), healthScore: gv.healthScore, heapUsed: mem.heapUsed, rss: mem.rss });
  } else if (cmd === 'leave' || cmd === 'close') {
    stop(cmd);
  }
}

function fail(e: unknown, print: (o: Record<string, unknown>) => void): void {
  const err = e as { code?: string; message: string };
  print({ error: { code: err.code, message: err.message } });
  process.stderr.write(`grapevine agent: ${err.message}\n`);
  process.exitCode = 3;
}

/** A logger writing to stderr at `level` and above, as text or JSON lines. */
export function stderrLogger(level: string, asJson: boolean): Logger {
  if (level !== 'silent' && !(LOG_LEVELS as readonly string[]).includes(level)) {
    throw new UsageError(`--log-level must be one of ${LOG_LEVELS.join(', ')}, silent; got "${level}"`);
  }
  const min = level === 'silent' ? LOG_LEVELS.length : LOG_LEVELS.indexOf(level as LogLevel);
  const write = (lvl: LogLevel) => (message: string, fields?: LogFields): void => {
    if (LOG_LEVELS.indexOf(lvl) < min) return;
    const time = new Date().toISOString();
    process.stderr.write(asJson ? `${JSON.stringify({ time, level: lvl, msg: message, ...fields })}\n` : `${time} ${lvl.padEnd(5)} ${message}\n`);
  };
  return { debug: write('debug'), info: write('info'), warn: write('warn'), error: write('error') };
}

function parseJson(text: string, option: string): unknown {
  try {
    return JSON.parse(text);
  } catch (e) {
    throw new UsageError(`${option}: not JSON (${(e as Error).message})`);
  }
}

/** "name:port" or a JSON registration, e.g. {"name":"web","port":8080,"check":{"http":"http://127.0.0.1:8080/health"}}. */
function parseService(spec: string): Registration {
  if (spec.trimStart().startsWith('{')) return parseJson(spec, '--service') as Registration;
  const at = spec.lastIndexOf(':');
  const port = Number(spec.slice(at + 1));
  if (at <= 0 || !/^\d+$/.test(spec.slice(at + 1)) || port < 1 || port > 65_535) {
    throw new UsageError(`--service ${spec}: expected name:port (port 1-65535) or a JSON registration`);
  }
  return { name: spec.slice(0, at), port };
}

function parseMeta(pairs: string[]): Record<string, string> | undefined {
  if (pairs.length === 0) return undefined;
  const meta: Record<string, string> = {};
  for (const pair of pairs) {
    const eq = pair.indexOf('=');
    if (eq <= 0) throw new UsageError(`--meta ${pair}: expected KEY=VALUE`);
    meta[pair.slice(0, eq)] = pair.slice(eq + 1);
  }
  return meta;
}

/** What the agent serves, each with where: gossip, the HTTP API with its status page and metrics, DNS. */
function startLine(gv: Grapevine, http: boolean, tlsOn: boolean, dns: boolean): string {
  const parts = [`${gv.name} listening on ${gv.address} (pid ${process.pid})`];
  if (http) {
    const base = `${tlsOn ? 'https' : 'http'}://${gv.listening('http') as string}`;
    parts.push(`HTTP API on ${gv.listening('http') as string} (${base}/v1/, status page ${base}/ui/, metrics ${base}/metrics)`);
  }
  if (dns) parts.push(`DNS on ${gv.listening('dns') as string}`);
  return parts.join(', ');
}

/** --data-dir, or the default for a fixed port under the user's state directory (XDG); undefined for none. */
function agentDataDir(flag: string | undefined, bind: string): string | undefined {
  if (flag === 'off') return undefined;
  if (flag !== undefined) return flag;
  const port = /:(\d+)$/.exec(bind)?.[1];
  if (port === undefined || Number(port) === 0) return undefined;
  const state = process.env.XDG_STATE_HOME || join(homedir(), '.local', 'state');
  return join(state, 'grapevine', `agent-${port}`);
}

/** The HTTPS flags as `http.tls`: a certificate needs its key, a required client certificate a CA. */
function httpTls(cert: string | undefined, key: string | undefined, ca: string | undefined, requireClientCert: boolean): HttpTls | undefined {
  if (cert === undefined && key === undefined) {
    if (ca !== undefined || requireClientCert) throw new UsageError('--http-tls-ca and --http-require-client-cert need --http-tls-cert and --http-tls-key');
    return undefined;
  }
  if (cert === undefined || key === undefined) throw new UsageError('--http-tls-cert and --http-tls-key go together');
  if (requireClientCert && ca === undefined) throw new UsageError('--http-require-client-cert needs --http-tls-ca');
  return {
    cert: readSecret(cert, '--http-tls-cert'), key: readSecret(key, '--http-tls-key'),
    ...(ca !== undefined ? { ca: readSecret(ca, '--http-tls-ca') } : {}), requireClientCert,
  };
}

/** Library options as the agent's flags name them. */
const FLAGS: readonly [RegExp, string][] = [
  [/^name$/, '--name'], [/^bind$/, '--bind'], [/^advertise$/, '--advertise'], [/^seeds/, '--seed'], [/^profile$/, '--profile'],
  [/^keyring/, '--keyring-file'], [/^meta/, '--meta'], [/^pool$/, '--pool'], [/^dataDir$/, '--data-dir'],
  [/^http\.token$/, '--http-token-file'], [/^http\.tls\.key$/, '--http-tls-key'], [/^http\.tls\.ca$/, '--http-tls-ca'], [/^http\.tls/, '--http-tls-cert'], [/^http/, '--http'], [/^dns\.domain$/, '--dns-domain'], [/^dns/, '--dns'],
];

/**
 * An option error in the agent's words: the flag instead of the library option, or, for what
 * only one flag holds (a --service's fields, --protocol's keys), that flag and the field.
 */
function flagged(e: InvalidOptionError, flag: string | undefined): string {
  if (flag !== undefined) return `${flag}: ${e.message}`;
  const reason = e.message.startsWith(`${e.option}: `) ? e.message.slice(e.option.length + 2) : e.message;
  const named = FLAGS.find(([re]) => re.test(e.option))?.[1];
  return named === undefined ? e.message : `${named}: ${reason}`;
}
