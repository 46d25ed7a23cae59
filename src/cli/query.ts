/**
 * Operator commands: `grapevine members|services|lookup <service>|keyring` ask a running agent's HTTP
 * API (`--http-addr`, default $GRAPEVINE_HTTP_ADDR or 127.0.0.1:8500) rather than joining the
 * cluster themselves: no tombstone, no joined/left pair in every member's log, one round trip.
 * An empty answer says so on stderr and exits 1.
 */
import { readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { parseDuration } from '../http/decode.js';
import { HELP, parse, UsageError } from './args.js';
import { parseKey, readSecret } from './keys.js';

const DEFAULT_HTTP_ADDR = '127.0.0.1:8500';
export const TOKEN_ENV = 'GRAPEVINE_HTTP_TOKEN';

export const COMMON = `  --http-addr HOST:PORT  the agent's HTTP API (default $GRAPEVINE_HTTP_ADDR or ${DEFAULT_HTTP_ADDR}; https://HOST:PORT for HTTPS)
  --token-file PATH      the API token, if the agent has one (or $${TOKEN_ENV})
  --timeout DURATION     give up after this long, e.g. 5s (default 10s)
  --json                 print the API's JSON
  -h, --help             this text
`;

const KEYRING_ACTIONS = ['list', 'install', 'use', 'remove'] as const;
const KV_ACTIONS = ['get', 'put', 'delete', 'list'] as const;

export const QUERY_USAGE = {
  members: `usage: grapevine members [options]\n\nLists the cluster's members and their states, as the local agent sees them.\n\n${COMMON}`,
  services: `usage: grapevine services [options]\n\nLists the cluster's services and their tags.\n\n${COMMON}`,
  lookup: `usage: grapevine lookup SERVICE [options]\n\nLists the instances of SERVICE.\n\n${COMMON}  --healthy              only passing instances\n  --tag TAG              only instances with TAG; repeat for several\n`,
  keyring: `usage: grapevine keyring list|install|use|remove [--key-file PATH] [options]

Rotates the cluster's gossip keys live, through an agent (Consul's keyring): "list" shows each
key and how many members hold it; "install" adds the key in --key-file (one key, hex or base64;
"-" reads stdin) on every member, "use" makes it the key every member seals with (once all hold
it), "remove" takes it off every member (once none seals with it). Each change returns when
every live member shows it. A rotation: keygen, install, use, remove the old key.

${COMMON}  --key-file PATH        the key to install, use or remove (never given on the command line)
`,
  kv: `usage: grapevine kv get KEY | put KEY [VALUE] | delete KEY | list [PREFIX] [options]

Reads and writes the cluster's key-value store through an agent (Consul's /v1/kv). The store is
eventually consistent: a put is read everywhere within about a second, and concurrent writes
to one key keep the last. "get" prints the value; "put" without VALUE reads it from stdin (or
--value-file); "delete --recurse" deletes every key under KEY; "list" prints the keys.

${COMMON}  --flags N              with put: the entry's flags (a uint64)
  --value-file PATH      with put: the value, from a file ("-": stdin)
  --recurse              with delete: every key under KEY
`,
} as const;

/** An error reaching the agent: printed as one line, exit 1. */
export class AgentUnreachable extends Error {}

interface HealthEntry {
  Node: { Node: string };
  Service: { ID: string; Address: string; Port: number; Tags: string[] };
  Checks: { Status: string }[];
}

export async function runQuery(command: keyof typeof QUERY_USAGE, argv: string[]): Promise<void> {
  const { values, positionals } = parse(() => parseArgs({
    args: argv,
    strict: true,
    allowPositionals: command === 'lookup' || command === 'keyring' || command === 'kv',
    options: {
      ...HELP,
      'http-addr': { type: 'string', default: process.env.GRAPEVINE_HTTP_ADDR ?? DEFAULT_HTTP_ADDR },
      'token-file': { type: 'string' },
      // A keyring change is answered once every member shows it, which the agent waits up to 10 s for.
      timeout: { type: 'string', default: command === 'keyring' ? '15s' : '10s' },
      json: { type: 'boolean', default: false },
      ...(command === 'lookup' ? { healthy: { type: 'boolean', default: false }, tag: { type: 'string', multiple: true, default: [] } } as const : {}),
      ...(command === 'keyring' ? { 'key-file': { type: 'string' } } as const : {}),
      ...(command === 'kv' ? { flags: { type: 'string' }, 'value-file': { type: 'string' }, recurse: { type: 'boolean', default: false } } as const : {}),
    },
  }));
  const service = positionals[0];
  if (command === 'lookup' && service === undefined) throw new UsageError('name the service: grapevine lookup SERVICE');
  if (command === 'keyring' && !(KEYRING_ACTIONS as readonly string[]).includes(service ?? '')) throw new UsageError('name what to do: grapevine keyring list|install|use|remove');
  if (command === 'kv' && !(KV_ACTIONS as readonly string[]).includes(service ?? '')) throw new UsageError('name what to do: grapevine kv get|put|delete|list');
  if (positionals.length > (command === 'kv' ? 3 : 1)) throw new UsageError(`one ${command === 'lookup' ? 'service' : 'action'} at a time; got ${positionals.join(', ')}`);
  // Go-style durations, parsed as the HTTP API parses Consul's ("5s", "500ms", "1m30s").
  let timeoutMs: number;
  try {
    timeoutMs = parseDuration(values.timeout, 'timeout');
  } catch {
    throw new UsageError(`--timeout must be a duration such as 5s or 500ms, got "${values.timeout}"`);
  }
  if (timeoutMs <= 0) throw new UsageError('--timeout must be more than 0');
  const token = values['token-file'] !== undefined ? readSecret(values['token-file'], '--token-file').trim() : process.env[TOKEN_ENV];
  const get = (path: string): Promise<unknown> => request(values['http-addr'], path, token, timeoutMs);
  const out = (json: unknown, lines: string[], empty: string): void => {
    if (lines.length === 0) {
      process.stderr.write(`${empty}\n`);
      process.exitCode = 1;
    }
    if (values.json) process.stdout.write(`${JSON.stringify(json)}\n`);
    else if (lines.length > 0) process.stdout.write(`${lines.join('\n')}\n`);
  };
  if (command === 'kv') {
    const v = values as { flags?: string; 'value-file'?: string; recurse?: boolean };
    return kvCommand(service as (typeof KV_ACTIONS)[number], positionals.slice(1), v, (path, init) => request(values['http-addr'], path, token, timeoutMs, init), out);
  }
  if (command === 'keyring') {
    const keyFile = (values as { 'key-file'?: string })['key-file'];
    return keyring(service as (typeof KEYRING_ACTIONS)[number], keyFile, (path, init) => request(values['http-addr'], path, token, timeoutMs, init), out);
  }
  if (command === 'members') {
    const members = await get('/v1/agent/members') as { Name: string; Addr: string; Port: number; Status: number }[];
    const states = ['none', 'alive', 'leaving', 'left', 'failed'];
    out(members, members.map((m) => `${m.Name.padEnd(20)} ${(states[m.Status] ?? String(m.Status)).padEnd(8)} ${m.Addr.includes(':') ? `[${m.Addr}]` : m.Addr}:${m.Port}`), 'no members');
  } else if (command === 'services') {
    const services = await get('/v1/catalog/services') as Record<string, string[]>;
    out(services, Object.entries(services).map(([name, tags]) => `${name.padEnd(24)} ${tags.join(',')}`), 'no services registered');
  } else {
    const v = values as { healthy?: boolean; tag?: string[] };
    const query = new URLSearchParams();
    for (const t of v.tag ?? []) query.append('tag', t);
    if (v.healthy === true) query.set('passing', '');
    const q = query.toString();
    const entries = await get(`/v1/health/service/${encodeURIComponent(service as string)}${q === '' ? '' : `?${q}`}`) as HealthEntry[];
    const health = (e: HealthEntry): string => (e.Checks.some((c) => c.Status === 'critical') ? 'critical' : e.Checks.some((c) => c.Status === 'warning') ? 'warning' : 'passing');
    const hostPort = (e: HealthEntry): string => `${e.Service.Address.includes(':') ? `[${e.Service.Address}]` : e.Service.Address}:${e.Service.Port}`;
    out(entries, entries.map((e) => `${hostPort(e).padEnd(24)} ${health(e).padEnd(9)} ${e.Node.Node} ${e.Service.ID} ${e.Service.Tags.join(',')}`), `no instances of ${service as string}`);
  }
}

type Call = (path: string, init?: { method?: string; body?: unknown; raw?: string | Uint8Array }) => Promise<unknown>;

async function kvCommand(action: (typeof KV_ACTIONS)[number], args: string[], o: { flags?: string; 'value-file'?: string; recurse?: boolean }, call: Call, out: (json: unknown, lines: string[], empty: string) => void): Promise<void> {
  const [key, value] = args;
  const path = (k: string): string => `/v1/kv/${k.split('/').map(encodeURIComponent).join('/')}`;
  if (action !== 'list' && (key === undefined || key === '')) throw new UsageError(`kv ${action} needs a KEY`);
  if ((o.flags !== undefined || o['value-file'] !== undefined) && action !== 'put') throw new UsageError('--flags and --value-file are for put');
  if (o.recurse === true && action !== 'delete') throw new UsageError('--recurse is for delete');
  if (value !== undefined && action !== 'put') throw new UsageError(`kv ${action} takes one KEY`);
  if (action === 'get') {
    const pairs = await call(path(key as string)).catch((e: unknown) => {
      if (e instanceof AgentUnreachable && / answered 404/.test(e.message)) return [];
      throw e;
    }) as { Value: string | null }[];
    const found = pairs[0];
    if (found === undefined) return out(null, [], `no key ${key as string}`);
    process.stdout.write(Buffer.from(found.Value ?? '', 'base64'));
    return;
  }
  if (action === 'list') {
    const keys = await call(`${path(key ?? '')}?keys`).catch((e: unknown) => {
      if (e instanceof AgentUnreachable && / answered 404/.test(e.message)) return [];
      throw e;
    }) as string[];
    return out(keys, keys, `no keys under ${JSON.stringify(key ?? '')}`);
  }
  if (action === 'delete') {
    await call(`${path(key as string)}${o.recurse === true ? '?recurse' : ''}`, { method: 'DELETE' });
    return;
  }
  if (value !== undefined && o['value-file'] !== undefined) throw new UsageError('give the value once: VALUE or --value-file');
  if (o.flags !== undefined && !/^\d{1,20}$/.test(o.flags)) throw new UsageError('--flags must be an unsigned integer');
  const file = o['value-file'] ?? (value === undefined ? '-' : undefined);
  const body = file === undefined ? value as string : file === '-' ? readFileSync(0) : readFileSync(file);
  await call(`${path(key as string)}${o.flags !== undefined ? `?flags=${o.flags}` : ''}`, { method: 'PUT', raw: body });
}

async function keyring(action: (typeof KEYRING_ACTIONS)[number], keyFile: string | undefined, call: Call, out: (json: unknown, lines: string[], empty: string) => void): Promise<void> {
  if (action === 'list') {
    if (keyFile !== undefined) throw new UsageError('--key-file is for install, use and remove');
    const rings = await call('/v1/operator/keyring') as { Keys: Record<string, number>; PrimaryKeys: Record<string, number>; NumNodes: number; Messages?: Record<string, string> }[];
    const lines = rings.flatMap((r) => [
      ...Object.entries(r.Keys).map(([k, n]) => `${k}  ${n}/${r.NumNodes} members${r.PrimaryKeys[k] !== undefined ? `, primary on ${r.PrimaryKeys[k]}` : ''}`),
      ...Object.entries(r.Messages ?? {}).map(([node, m]) => `${node}: ${m}`),
    ]);
    return out(rings, lines, 'no keys');
  }
  if (keyFile === undefined) throw new UsageError(`keyring ${action} needs --key-file PATH ("-" for stdin)`);
  const text = keyFile === '-' ? readFileSync(0, 'utf8') : readSecret(keyFile, '--key-file');
  const lines = text.split('\n').map((l) => l.replace(/#.*/, '').trim()).filter((l) => l !== '');
  if (lines.length !== 1) throw new UsageError(`--key-file ${keyFile}: expected one key, found ${lines.length}`);
  const key = Buffer.from(parseKey(lines[0] as string, `--key-file ${keyFile}`)).toString('base64');
  await call('/v1/operator/keyring', { method: { install: 'POST', use: 'PUT', remove: 'DELETE' }[action], body: { Key: key } });
  process.stdout.write(`${{ install: 'installed on', use: 'now the primary key of', remove: 'removed from' }[action]} every live member\n`);
}

/**
 * One call to the agent's API; `addr` is HOST:PORT, or a URL for HTTPS ("https://host:8501";
 * NODE_EXTRA_CA_CERTS names a private CA). An empty answer is undefined.
 */
export async function request(addr: string, path: string, token: string | undefined, timeoutMs: number, init: { method?: string; body?: unknown; raw?: string | Uint8Array } = {}): Promise<unknown> {
  let res: Response;
  const base = /^https?:\/\//.test(addr) ? addr.replace(/\/+$/, '') : `http://${addr}`;
  try {
    res = await fetch(`${base}${path}`, {
      method: init.method ?? 'GET',
      headers: token !== undefined ? { 'X-Consul-Token': token } : {},
      ...(init.body !== undefined ? { body: JSON.stringify(init.body) } : init.raw !== undefined ? { body: typeof init.raw === 'string' ? init.raw : Buffer.from(init.raw) } : {}),
      signal: AbortSignal.timeout(timeoutMs),
    });
  } catch (e) {
    const c = (e as { cause?: { code?: string; message?: string } }).cause;
    const cause = c?.code ?? c?.message ?? (e as Error).message;
    throw new AgentUnreachable(`no agent answering at ${addr} (${cause}); start one with "grapevine agent", or point --http-addr at it`);
  }
  const text = await res.text();
  if (!res.ok) throw new AgentUnreachable(`the agent at ${addr} answered ${res.status}: ${text.trim()}`);
  return text === '' ? undefined : JSON.parse(text);
}
