/**
 * Seeds from DNS, served by a real dnsmasq (Debian) on a free loopback port: `dns:name:port`
 * (A records) and `dns+srv:name` (SRV, targets' A records). Names are looked up at every join
 * attempt and again later, so a seed published after a member started is still found.
 * dnsmasq runs with no configuration file and no upstream, and is stopped by its PID.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { Grapevine } from '../src/index.js';
import { available, freePort, runs, stopProgram } from './needs.js';
import { until } from './until.js';

const DNSMASQ = '/usr/sbin/dnsmasq';
const hasDnsmasq = available('dnsmasq', runs(DNSMASQ, ['--version']), 'apt-get install -y dnsmasq-base');

let seed: Grapevine;
let dnsPort = 0;
let dnsmasq: ChildProcess | undefined;
const members: Grapevine[] = [];

/** (Re)starts dnsmasq on dnsPort with these extra records. */
async function serve(records: string[]): Promise<void> {
  await stopProgram(dnsmasq);
  dnsmasq = spawn(DNSMASQ, ['--keep-in-foreground', '-C', '/dev/null', `--port=${dnsPort}`, '--listen-address=127.0.0.1', '--bind-interfaces', '--no-resolv', '--no-hosts', '-u', 'root', ...records], { stdio: 'ignore' });
  await new Promise((r) => setTimeout(r, 300));
}

const start = async (options: Parameters<typeof Grapevine.start>[0]): Promise<Grapevine> => {
  const gv = await Grapevine.start({ bind: '127.0.0.1:0', profile: 'local', seedResolvers: [`127.0.0.1:${dnsPort}`], ...options });
  members.push(gv);
  return gv;
};

describe.skipIf(!hasDnsmasq)('seeds from DNS', () => {
  beforeAll(async () => {
    seed = await Grapevine.start({ name: 'seed', bind: '127.0.0.1:0', profile: 'local' });
    dnsPort = await freePort();
    const seedPort = seed.address.split(':')[1] as string;
    await serve([
      '--host-record=seeds.grapevine.test,127.0.0.1', '--host-record=seed-a.grapevine.test,127.0.0.1',
      `--srv-host=_grapevine._udp.grapevine.test,seed-a.grapevine.test,${seedPort}`,
    ]);
  }, 30_000);

  afterAll(async () => {
    await Promise.all(members.map((m) => m.close()));
    await seed?.close();
    await stopProgram(dnsmasq);
  });

  test('dns:name:port and dns+srv:name join through the addresses they resolve to', async () => {
    const port = seed.address.split(':')[1] as string;
    const viaA = await start({ name: 'via-a', seeds: [`dns:seeds.grapevine.test:${port}`] });
    const viaSrv = await start({ name: 'via-srv', seeds: ['dns+srv:_grapevine._udp.grapevine.test'] });
    await until(() => [viaA, viaSrv, seed].every((m) => m.members().filter((x) => x.state === 'alive').length === 3), 10_000);
    await expect(start({ name: 'nowhere', seeds: ['dns:nothing.grapevine.test'], joinTimeoutMs: 1_500 }))
      .rejects.toMatchObject({ code: 'grapevine.join-failed', message: expect.stringContaining('no seed address resolved') });
    await expect(start({ seeds: ['dns:bad name'] })).rejects.toMatchObject({ code: 'grapevine.invalid-option', option: 'seeds' });
  });

  test('a name published after the member started is looked up again and joined', async () => {
    const port = seed.address.split(':')[1] as string;
    const late = await start({ name: 'late', seeds: [`dns:later.grapevine.test:${port}`], retryJoin: true, joinTimeoutMs: 1_000, protocol: { rejoinIntervalMs: 500 } });
    expect(late.members().length).toBe(1); // alone: the name did not resolve
    await serve(['--host-record=seeds.grapevine.test,127.0.0.1', '--host-record=later.grapevine.test,127.0.0.1']);
    await until(() => late.member('seed')?.state === 'alive', 15_000);
  }, 30_000);
});
