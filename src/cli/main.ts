#!/usr/bin/env node
/** The `grapevine` command. Subcommands: agent, demo. */
import { runAgent } from './agent.js';
import { runDemo } from './demo.js';

const [command, ...rest] = process.argv.slice(2);
if (command === 'agent') await runAgent(rest);
else if (command === 'demo') await runDemo(rest);
else {
  process.stderr.write('usage: grapevine agent [--name N] [--bind host:port] [--seed host:port ...] [--profile lan|wan|local] [--json]\n'
    + '       grapevine demo [--nodes 5]\n');
  process.exitCode = command === undefined || command === '--help' ? 0 : 2;
}
