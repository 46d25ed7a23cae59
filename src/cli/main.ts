#!/usr/bin/env node
/** The `grapevine` command. Subcommands: agent, demo, members, services, lookup. */
import { runAgent } from './agent.js';
import { runDemo } from './demo.js';
import { runQuery } from './query.js';

const [command, ...rest] = process.argv.slice(2);
if (command === 'agent') await runAgent(rest);
else if (command === 'demo') await runDemo(rest);
else if (command === 'members' || command === 'services' || command === 'lookup') {
  try {
    await runQuery(command, rest);
  } catch (e) {
    process.stderr.write(`grapevine ${command}: ${(e as Error).message}\n`);
    process.exitCode = 2;
  }
}
else {
  process.stderr.write('usage: grapevine agent [--name N] [--bind host:port] [--seed host:port ...] [--profile lan|wan|local]\n'
    + '                       [--service name:port | --service JSON ...] [--key-hex K] [--json]\n'
    + '       grapevine members|services --seed host:port [--key-hex K] [--json]\n'
    + '       grapevine lookup <service> --seed host:port [--healthy] [--tag T ...] [--key-hex K] [--json]\n'
    + '       grapevine demo [--nodes 5]\n');
  process.exitCode = command === undefined || command === '--help' ? 0 : 2;
}
