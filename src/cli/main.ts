#!/usr/bin/env node
/** The `grapevine` command: agent, members, services, lookup, keygen, demo, help, --version. */
import { parseArgs } from 'node:util';
import { provideBridges } from '../bridge/provide.js';
import { provideDns } from '../dns/provide.js';
import { provideEvents } from '../events/provide.js';
import { provideHttp } from '../http/provide.js';
import { provideKv } from '../kv/provide.js';
import { providePersistence } from '../persist/provide.js';
import { provideQueries } from '../queries/provide.js';
import { packageVersion } from '../runtime/index.js';
import { AGENT_USAGE, runAgent } from './agent.js';
import { HELP, HelpRequested, parse, UsageError } from './args.js';
import { DEMO_USAGE, runDemo } from './demo.js';
import { newKey } from './keys.js';
import { QUERY_USAGE, runQuery } from './query.js';

const USAGE = `usage: grapevine <command> [options]

A peer-to-peer service registry: every member gossips its services and keeps the whole registry.

commands:
  agent      run a member in this process (for services not written for Node)
  members    list the cluster's members, asking through a seed
  services   list the cluster's services
  lookup     list the instances of one service
  kv         get, put, delete and list keys in the cluster's key-value store
  keyring    list, install, use or remove gossip keys across the cluster, live
  keygen     print a new random encryption key
  demo       run a small cluster on 127.0.0.1 and watch it detect a crash
  help       this text

"grapevine <command> --help" shows a command's options; "grapevine --version" the version.
`;

const KEYGEN_USAGE = `usage: grapevine keygen [--hex]

Prints a new random 32-byte key, base64 (or hex with --hex). Put it in a keyring file or in
GRAPEVINE_KEYRING on every member.
`;

const USAGES: Record<string, string> = { agent: AGENT_USAGE, demo: DEMO_USAGE, keygen: KEYGEN_USAGE, ...QUERY_USAGE };

async function run(command: string | undefined, rest: string[]): Promise<void> {
  switch (command) {
    case 'agent': return runAgent(rest);
    case 'demo': return runDemo(rest);
    case 'members':
    case 'services':
    case 'lookup':
    case 'keyring':
    case 'kv': return runQuery(command, rest);
    case 'keygen': {
      const { values } = parse(() => parseArgs({ args: rest, strict: true, options: { ...HELP, hex: { type: 'boolean', default: false } } }));
      process.stdout.write(`${newKey(values.hex)}\n`);
      return;
    }
    default: throw new UsageError(`unknown command "${command}"`);
  }
}

provideHttp();
provideDns();
provideBridges();
providePersistence();
provideQueries();
provideEvents();
provideKv();
const [command, ...rest] = process.argv.slice(2);
if (command === undefined || command === 'help' || command === '--help' || command === '-h') {
  const topic = command === 'help' ? rest[0] : undefined;
  const text = topic !== undefined && USAGES[topic] !== undefined ? USAGES[topic] : USAGE;
  // Asked for, it is output (exit 0); for a bare "grapevine" it is a mistake's explanation (exit 2).
  if (command === undefined) {
    process.stderr.write(text);
    process.exitCode = 2;
  } else process.stdout.write(text);
} else if (command === '--version' || command === '-v' || command === 'version') {
  process.stdout.write(`${packageVersion()}\n`);
} else {
  try {
    await run(command, rest);
  } catch (e) {
    const usage = USAGES[command] ?? USAGE;
    if (e instanceof HelpRequested) {
      process.stdout.write(usage);
    } else if (e instanceof UsageError) {
      process.stderr.write(`grapevine${USAGES[command] !== undefined ? ` ${command}` : ''}: ${e.message}\n\n${usage}`);
      process.exitCode = 2;
    } else {
      const err = e as { code?: string; message?: string };
      process.stderr.write(`grapevine ${command}: ${err.message ?? String(e)}${err.code !== undefined ? ` (${err.code})` : ''}\n`);
      process.exitCode = 1;
    }
  }
}
