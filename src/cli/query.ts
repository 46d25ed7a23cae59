/**
 * One-shot operator commands: `grapevine members|services|lookup <service> --seed host:port`.
 * They join the cluster as a short-lived member, wait until its state has synced (and large
 * records have been pulled), print, and leave gracefully.
 */
import { parseArgs } from 'node:util';
import type { ProfileName } from '../core/config.js';
import { Grapevine } from '../runtime/index.js';

/** Quiet time after the join before answering, so pulled records have landed. */
const SETTLE_MS = 1_000;

export async function runQuery(command: 'members' | 'services' | 'lookup', argv: string[]): Promise<void> {
  const { values, positionals } = parseArgs({
    args: argv,
    allowPositionals: true,
    options: {
      seed: { type: 'string', multiple: true, default: [] },
      bind: { type: 'string', default: '0.0.0.0:0' },
      profile: { type: 'string', default: 'lan' },
      'key-hex': { type: 'string' },
      json: { type: 'boolean', default: false },
      healthy: { type: 'boolean', default: false },
      tag: { type: 'string', multiple: true, default: [] },
    },
  });
  if (values.seed.length === 0) throw new Error('--seed host:port is required');
  const service = positionals[0];
  if (command === 'lookup' && service === undefined) throw new Error('name the service: grapevine lookup <service> --seed host:port');
  const gv = await Grapevine.start({
    name: `query-${process.pid}`,
    bind: values.bind,
    seeds: values.seed,
    profile: values.profile as ProfileName,
    ...(values['key-hex'] !== undefined ? { keyring: [Uint8Array.from(Buffer.from(values['key-hex'], 'hex'))] } : {}),
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
      const instances = gv.lookup(service as string, { healthy: values.healthy, tags: values.tag });
      out(instances, instances.map((i) => `${`${i.address}:${i.port}`.padEnd(24)} ${i.health.padEnd(9)} ${i.node} ${i.id} ${i.tags.join(',')}`).join('\n'));
    }
  } finally {
    await gv.leave({ timeoutMs: 2_000 });
  }
}
