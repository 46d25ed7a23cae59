/**
 * One-shot operator commands: `grapevine members|services|lookup <service> --seed host:port`.
 * They join the cluster as a short-lived member, wait until its state has synced (and large
 * records have been pulled), print, and leave gracefully.
 */
import { parseArgs } from 'node:util';
import type { ProfileName } from '../core/config.js';
import { Grapevine } from '../runtime/index.js';
import { HELP, parse, UsageError } from './args.js';
import { loadKeyring } from './keys.js';

/** Quiet time after the join before answering, so pulled records have landed. */
const SETTLE_MS = 1_000;

const COMMON = `  --seed HOST:PORT       a member to ask (required; repeat for several)
  --bind HOST:PORT       where this short-lived member listens (default 0.0.0.0:0)
  --profile lan|wan|local  protocol timing preset (default lan)
  --keyring-file PATH    the cluster's keys, one per line (or GRAPEVINE_KEYRING)
  --json                 print JSON
  -h, --help             this text
`;

export const QUERY_USAGE = {
  members: `usage: grapevine members --seed HOST:PORT [options]\n\nLists the cluster's members and their states.\n\n${COMMON}`,
  services: `usage: grapevine services --seed HOST:PORT [options]\n\nLists the cluster's services and how many instances each has.\n\n${COMMON}`,
  lookup: `usage: grapevine lookup SERVICE --seed HOST:PORT [options]\n\nLists the instances of SERVICE.\n\n${COMMON}  --healthy              only passing instances\n  --tag TAG              only instances with TAG; repeat for several\n`,
} as const;

export async function runQuery(command: 'members' | 'services' | 'lookup', argv: string[]): Promise<void> {
  const { values, positionals } = parse(() => parseArgs({
    args: argv,
    strict: true,
    allowPositionals: command === 'lookup',
    options: {
      ...HELP,
      seed: { type: 'string', multiple: true, default: [] },
      bind: { type: 'string', default: '0.0.0.0:0' },
      profile: { type: 'string', default: 'lan' },
      'keyring-file': { type: 'string' },
      json: { type: 'boolean', default: false },
      ...(command === 'lookup' ? { healthy: { type: 'boolean', default: false }, tag: { type: 'string', multiple: true, default: [] } } as const : {}),
    },
  }));
  if (values.seed.length === 0) throw new UsageError('--seed HOST:PORT is required');
  const service = positionals[0];
  if (command === 'lookup' && service === undefined) throw new UsageError('name the service: grapevine lookup SERVICE --seed HOST:PORT');
  if (positionals.length > 1) throw new UsageError(`one service at a time; got ${positionals.join(', ')}`);
  const keyring = loadKeyring(values['keyring-file']);
  const gv = await Grapevine.start({
    name: `query-${process.pid}`,
    bind: values.bind,
    seeds: values.seed,
    profile: values.profile as ProfileName,
    ...(keyring !== undefined ? { keyring } : {}),
  });
  try {
    await new Promise((r) => setTimeout(r, SETTLE_MS));
    const out = (o: unknown, text: string): void => void process.stdout.write(values.json ? `${JSON.stringify(o)}\n` : `${text}\n`);
    if (command === 'members') {
      const members = gv.members().filter((m) => m.name !== gv.name);
      out(members, members.map((m) => `${m.name.padEnd(20)} ${m.state.padEnd(8)} ${m.addr}`).join('\n'));
    } else if (command === 'services') {
      const names = gv.services().sort();
      out(names, names.map((n) => `${n.padEnd(24)} ${gv.lookup(n).length} instances`).join('\n'));
    } else {
      const v = values as { healthy?: boolean; tag?: string[] };
      const instances = gv.lookup(service as string, { healthy: v.healthy === true, tags: v.tag ?? [] });
      out(instances, instances.map((i) => `${i.hostPort.padEnd(24)} ${i.health.padEnd(9)} ${i.node} ${i.id} ${i.tags.join(',')}`).join('\n'));
    }
  } finally {
    await gv.leave({ timeoutMs: 2_000 });
  }
}
