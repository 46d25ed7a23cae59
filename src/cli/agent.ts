/**
 * `grapevine agent`: runs one member in this process. With --json it prints one JSON object per
 * line ({"ready":...} once joined, then every member and service event) and answers "members",
 * "stats", "services" and "lookup <service>" on stdin; "leave" and "close" end it. `--service`
 * registers an instance for a non-Node service ("name:port", or a JSON registration with a
 * health check). Used by the demo, the integration tests and the cluster benchmark.
 */
import { createInterface } from 'node:readline';
import { parseArgs } from 'node:util';
import { Grapevine, type Registration } from '../runtime/index.js';
import type { ProfileName } from '../core/config.js';

export async function runAgent(argv: string[]): Promise<void> {
  const { values } = parseArgs({
    args: argv,
    allowNegative: true,
    options: {
      name: { type: 'string' },
      bind: { type: 'string', default: '0.0.0.0:7946' },
      advertise: { type: 'string' },
      seed: { type: 'string', multiple: true, default: [] },
      // An agent outlives its seeds' restarts: it starts alone and joins them when they answer.
      'retry-join': { type: 'boolean', default: true },
      profile: { type: 'string', default: 'lan' },
      protocol: { type: 'string' },
      'key-hex': { type: 'string' },
      json: { type: 'boolean', default: false },
      service: { type: 'string', multiple: true, default: [] },
    },
  });
  const json = values.json === true;
  const print = (o: Record<string, unknown>, text: string): void => {
    process.stdout.write(json ? `${JSON.stringify({ t: Date.now(), ...o })}\n` : `${text}\n`);
  };
  let gv: Grapevine;
  try {
    gv = await Grapevine.start({
      ...(values.name !== undefined ? { name: values.name } : {}),
      bind: values.bind,
      ...(values.advertise !== undefined ? { advertise: values.advertise } : {}),
      seeds: values.seed,
      retryJoin: values['retry-join'],
      profile: values.profile as ProfileName,
      ...(values.protocol !== undefined ? { protocol: JSON.parse(values.protocol) as Record<string, number> } : {}),
      ...(values['key-hex'] !== undefined ? { keyring: [Uint8Array.from(Buffer.from(values['key-hex'], 'hex'))] } : {}),
    });
  } catch (e) {
    const err = e as { code?: string; message: string };
    print({ error: { code: err.code, message: err.message } }, `error: ${err.message}`);
    process.exitCode = 3;
    return;
  }
  try {
    for (const spec of values.service) await gv.register(parseService(spec));
  } catch (e) {
    const err = e as { code?: string; message: string };
    print({ error: { code: err.code, message: err.message } }, `error: ${err.message}`);
    process.exitCode = 3;
    await gv.close();
    return;
  }
  gv.on('service', ({ type, instance }) => {
    print({ service: type, instance }, `${gv.name}: ${instance.service} ${instance.id} on ${instance.node} ${type} (${instance.health})`);
  });
  gv.on('member', ({ type, member }) => {
    print({ event: type, member: member.name, incarnation: member.incarnation }, `${gv.name}: ${member.name} ${type}`);
  });
  print({ ready: { name: gv.name, address: gv.address } }, `${gv.name} listening on ${gv.address}`);
  // Members learned while joining were announced before anyone could listen: report them now.
  for (const m of gv.members()) {
    if (m.name !== gv.name) print({ event: 'joined', member: m.name, incarnation: m.incarnation }, `${gv.name}: ${m.name} joined`);
  }
  const rl = createInterface({ input: process.stdin });
  const stop = (how: 'leave' | 'close'): void => {
    rl.close();
    void (how === 'leave' ? gv.leave() : gv.close()).then(() => process.exit(0));
  };
  rl.on('line', (line) => {
    const cmd = line.trim();
    if (cmd === 'members') {
      const members = gv.members().map((m) => ({ name: m.name, state: m.state, incarnation: m.incarnation, addr: m.addr }));
      print({ members }, members.map((m) => `${m.name.padEnd(16)} ${m.state.padEnd(8)} ${m.addr}`).join('\n'));
    } else if (cmd.startsWith('lookup ')) {
      const service = cmd.slice('lookup '.length).trim();
      const instances = gv.lookup(service);
      print({ lookup: { service, instances } }, instances.map((i) => `${i.service} ${i.id} ${i.address}:${i.port} ${i.health} (${i.node})`).join('\n'));
    } else if (cmd === 'services') {
      print({ services: gv.services() }, gv.services().join('\n'));
    } else if (cmd === 'stats') {
      const mem = process.memoryUsage();
      print({ stats: gv.stats(), healthScore: gv.healthScore, heapUsed: mem.heapUsed, rss: mem.rss }, JSON.stringify(gv.stats()));
    } else if (cmd === 'leave' || cmd === 'close') {
      stop(cmd);
    }
  });
  process.once('SIGTERM', () => stop('leave'));
  process.once('SIGINT', () => stop('leave'));
}

/** "name:port" or a JSON registration, e.g. {"name":"web","port":8080,"check":{"http":"http://127.0.0.1:8080/health"}}. */
function parseService(spec: string): Registration {
  if (spec.trimStart().startsWith('{')) return JSON.parse(spec) as Registration;
  const at = spec.lastIndexOf(':');
  return { name: spec.slice(0, at), port: Number(spec.slice(at + 1)) };
}
