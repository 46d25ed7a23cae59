/**
 * Real processes on 127.0.0.1: ten agents, encrypted, on the lan profile. Each step checks what
 * every other member reports through its own event stream and member table.
 */
import { createServer } from 'node:http';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { AgentProcess } from '../src/cli/processes.js';
import { Grapevine, JoinError } from '../src/index.js';

const KEY = 'a1'.repeat(32);
const COUNT = 10;
const agents = new Map<string, AgentProcess>();
let seed = '';

function others(except: string): AgentProcess[] {
  return [...agents.entries()].filter(([n, a]) => n !== except && a.running).map(([, a]) => a);
}

async function until(check: () => Promise<boolean> | boolean, timeoutMs: number, what: string): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

async function stateEverywhere(subject: string, state: string, observers: AgentProcess[]): Promise<boolean> {
  const tables = await Promise.all(observers.map((a) => a.members()));
  return tables.every((t) => t.find((m) => m.name === subject)?.state === state);
}

function start(name: string, options: { bind?: string; keyHex?: string; noRetryJoin?: boolean } = {}): AgentProcess {
  const agent = new AgentProcess({
    name, bind: options.bind ?? '127.0.0.1:0', seeds: seed === '' ? [] : [seed], profile: 'lan', keyHex: options.keyHex ?? KEY,
    ...(options.noRetryJoin === true ? { noRetryJoin: true } : {}),
  });
  agents.set(name, agent);
  return agent;
}

describe('a real cluster on loopback', () => {
  beforeAll(async () => {
    seed = await start('m0').ready();
    await Promise.all(Array.from({ length: COUNT - 1 }, (_, i) => start(`m${i + 1}`).ready()));
  }, 60_000);

  afterAll(async () => {
    await Promise.all([...agents.values()].map((a) => a.stop()));
  });

  test('ten processes join and converge', async () => {
    await until(async () => {
      const tables = await Promise.all([...agents.values()].map((a) => a.members()));
      return tables.every((t) => t.length === COUNT && t.every((m) => m.state === 'alive'));
    }, 20_000, 'every member to see all ten alive');
  });

  test('a SIGSTOPped member (3 s) is not declared dead, and nobody else is suspected because of it', async () => {
    const paused = agents.get('m3') as AgentProcess;
    const marks = new Map([...agents].map(([n, a]) => [n, a.lines.length]));
    paused.signal('SIGSTOP');
    await new Promise((r) => setTimeout(r, 3_000));
    paused.signal('SIGCONT');
    await new Promise((r) => setTimeout(r, 12_000));
    for (const [name, agent] of agents) {
      const events = agent.lines.slice(marks.get(name));
      expect(events.filter((l) => l.event === 'dead'), `${name} declared someone dead`).toEqual([]);
      expect(events.filter((l) => l.event === 'suspect' && l.member !== 'm3'), `${name} suspected a healthy member`).toEqual([]);
    }
    expect(await stateEverywhere('m3', 'alive', others('m3'))).toBe(true);
  }, 30_000);

  test('a SIGKILLed member is declared dead by every other member', async () => {
    const victim = agents.get('m9') as AgentProcess;
    victim.signal('SIGKILL');
    await victim.exited;
    await until(() => stateEverywhere('m9', 'dead', others('m9')), 30_000, 'everyone to declare m9 dead');
  }, 40_000);

  test('a member that joins after the death never lists the dead member nor reports it (issue 23)', async () => {
    const late = start('late');
    await late.ready();
    await new Promise((r) => setTimeout(r, 3_000)); // past the join-time push-pulls that brought it back before
    expect((await late.members()).filter((m) => m.name === 'm9')).toEqual([]);
    expect(late.lines.filter((l) => l.member === 'm9').map((l) => l.event)).toEqual([]);
  }, 20_000);

  test('a restarted member rejoins under the same name with a higher incarnation', async () => {
    const old = (await (agents.get('m0') as AgentProcess).members()).find((m) => m.name === 'm9');
    await start('m9').ready();
    await until(() => stateEverywhere('m9', 'alive', others('m9')), 20_000, 'm9 to be alive again everywhere');
    const now = (await (agents.get('m0') as AgentProcess).members()).find((m) => m.name === 'm9');
    expect(now?.incarnation).toBeGreaterThan(old?.incarnation ?? Number.POSITIVE_INFINITY);
  }, 30_000);

  test('a graceful leave shows as left, not dead', async () => {
    const leaver = agents.get('m8') as AgentProcess;
    leaver.send('leave');
    expect(await leaver.exited).toBe(0);
    await until(() => stateEverywhere('m8', 'left', others('m8')), 10_000, 'everyone to see m8 left').catch(async (e: Error) => {
      const views = await Promise.all(others('m8').map(async (a) => `${a.options.name}: ${JSON.stringify((await a.members()).find((m) => m.name === 'm8'))}`));
      const own = leaver.lines.map((l) => JSON.stringify(l)).slice(-5);
      throw new Error(`${e.message}\n${views.join('\n')}\nm8's last lines:\n${own.join('\n')}`);
    });
    for (const a of others('m8')) expect(a.lines.some((l) => l.member === 'm8' && l.event === 'dead')).toBe(false);
  }, 20_000);

  test('a member with the wrong key never joins', async () => {
    const intruder = start('intruder', { keyHex: 'b2'.repeat(32), noRetryJoin: true });
    await expect(intruder.ready()).rejects.toMatchObject({ code: 'grapevine.join-failed' });
    for (const a of others('intruder')) expect((await a.members()).some((m) => m.name === 'intruder')).toBe(false);
  }, 20_000);

  test('a service whose HTTP health endpoint goes down leaves every healthy lookup, and comes back', async () => {
    const server = createServer((_req, res) => res.end('ok'));
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const port = (server.address() as { port: number }).port;
    const web = await Grapevine.start({ name: 'web-1', bind: '127.0.0.1:0', seeds: [seed], keyring: [Buffer.from(KEY, 'hex')] });
    try {
      const handle = await web.register({ name: 'web', port, check: { http: `http://127.0.0.1:${port}/health`, intervalMs: 1_000, rise: 1, fall: 1 } });
      expect(handle.health).toBe('passing');
      const healthEverywhere = async (health: string): Promise<boolean> => {
        const views = await Promise.all(others('').map((a) => a.lookup('web')));
        return views.every((instances) => instances.length === 1 && instances[0]?.health === health);
      };
      await until(() => healthEverywhere('passing'), 10_000, 'web passing on every agent');
      await new Promise((resolve) => server.close(resolve));
      await until(() => healthEverywhere('critical'), 10_000, 'web critical on every agent');
      await new Promise<void>((resolve) => server.listen(port, '127.0.0.1', resolve));
      await until(() => healthEverywhere('passing'), 10_000, 'web passing again on every agent');
    } finally {
      server.close();
      await web.close();
    }
  }, 40_000);
});

describe('Grapevine.start in this process', () => {
  test('rejects bad options with a typed error naming the option', async () => {
    await expect(Grapevine.start({ bind: 'nonsense' })).rejects.toMatchObject({ code: 'grapevine.invalid-option', option: 'bind' });
    await expect(Grapevine.start({ bind: '127.0.0.1:0', profile: 'moon' as never })).rejects.toMatchObject({ option: 'profile' });
    await expect(Grapevine.start({ bind: '127.0.0.1:0', keyring: [new Uint8Array(7)] })).rejects.toMatchObject({ option: 'keyring' });
    await expect(Grapevine.start({ bind: '127.0.0.1:0', seeds: ['x'] })).rejects.toMatchObject({ option: 'seeds' });
    await expect(Grapevine.start({ bind: '127.0.0.1:0', colour: 'red' } as never)).rejects.toMatchObject({ option: 'colour' });
    await expect(Grapevine.start({ bind: '127.0.0.1:0', detection: { pauseToleranceMs: -1 } })).rejects.toMatchObject({ option: 'detection.pauseToleranceMs' });
    await expect(Grapevine.start({ bind: '127.0.0.1:0', detection: { pauseMs: 3 } as never })).rejects.toMatchObject({ option: 'detection' });
    await expect(Grapevine.start({ bind: '127.0.0.1:0', seedResolvers: ['dns.example:53'] })).rejects.toMatchObject({ option: 'seedResolvers' });
    await expect(Grapevine.start({ bind: '127.0.0.1:0', seedResolvers: ['nonsense'] })).rejects.toMatchObject({ option: 'seedResolvers' });
  });

  test('a port in use is a BindError; port 0 is reported; close is idempotent', async () => {
    const a = await Grapevine.start({ name: 'a', bind: '127.0.0.1:0' });
    expect(a.boundAddress).toMatch(/^127\.0\.0\.1:\d+$/);
    expect(a.boundAddress).not.toBe('127.0.0.1:0');
    await expect(Grapevine.start({ name: 'b', bind: a.boundAddress })).rejects.toMatchObject({ code: 'grapevine.bind-failed', option: 'bind' });
    await a.close();
    await a.close();
  });

  test('unreachable seeds reject with JoinError after the join timeout', async () => {
    const start = Date.now();
    await expect(Grapevine.start({ bind: '127.0.0.1:0', seeds: ['127.0.0.1:9'], joinTimeoutMs: 500 })).rejects.toBeInstanceOf(JoinError);
    expect(Date.now() - start).toBeLessThan(5_000);
  });

  test('an abort signal stops a pending join', async () => {
    const controller = new AbortController();
    const pending = Grapevine.start({ bind: '127.0.0.1:0', seeds: ['127.0.0.1:9'], signal: controller.signal });
    setTimeout(() => controller.abort(new Error('stop')), 100);
    await expect(pending).rejects.toThrow('stop');
  });

  test('IPv6 loopback: bind and advertise in brackets, two members find each other', async () => {
    const a = await Grapevine.start({ name: 'v6a', bind: '[::1]:0', profile: 'local' });
    const b = await Grapevine.start({ name: 'v6b', bind: '[::1]:0', seeds: [a.address], profile: 'local' });
    expect(a.address).toMatch(/^\[::1\]:\d+$/);
    await until(() => a.member('v6b')?.state === 'alive' && b.member('v6a')?.state === 'alive', 5_000, 'IPv6 members to meet');
    await Promise.all([a.close(), b.close()]);
  });

  test('events: member changes arrive as events; leave resolves after telling the others', async () => {
    const a = await Grapevine.start({ name: 'ea', bind: '127.0.0.1:0', profile: 'local' });
    const seen: string[] = [];
    a.on('member', ({ type, member }) => seen.push(`${type}:${member.name}`));
    const b = await Grapevine.start({ name: 'eb', bind: '127.0.0.1:0', seeds: [a.address], profile: 'local' });
    await until(() => seen.includes('joined:eb'), 5_000, 'joined event');
    await b.leave();
    await until(() => seen.includes('left:eb'), 5_000, 'left event');
    await a.close();
  });
});
