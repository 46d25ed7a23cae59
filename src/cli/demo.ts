/**
 * `npm run demo`: a real cluster on 127.0.0.1, one process per member, each registering a `web`
 * instance: a small HTTP server this process runs for it, watched by an HTTP health check, so
 * the health shown is measured, not assumed. It waits for the members to find each other and every registry to list every
 * instance, SIGKILLs one and shows every other member detecting it and its instance vanishing
 * from lookups, restarts it under the same name and shows it rejoining, then leaves gracefully
 * and exits. Every phase is bounded.
 */
import { createServer, type Server } from 'node:http';
import { parseArgs } from 'node:util';
import { HELP, integer, parse } from './args.js';
import { AgentProcess } from './processes.js';

const PHASE_TIMEOUT_MS = 60_000;

export const DEMO_USAGE = `usage: grapevine demo [--nodes N]

Starts N members (3-20, default 5) on 127.0.0.1, one process each, each with a web service and
its health check; kills one without warning, shows the others detect it, restarts it, and leaves.

  --nodes N   how many members
  -h, --help  this text
`;

/** A web server for one member's instance, on a free loopback port, answering its health check. */
async function webServer(name: string): Promise<Server> {
  const server = createServer((_, res) => res.end(`hello from ${name}\n`));
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return server;
}

export async function runDemo(argv: string[]): Promise<void> {
  const { values } = parse(() => parseArgs({ args: argv, strict: true, options: { ...HELP, nodes: { type: 'string', default: '5' } } }));
  const count = integer(values.nodes, 'nodes', 3, 20);
  const servers = new Map<string, Server>();
  const names = Array.from({ length: count }, (_, i) => `node-${i + 1}`);
  const started = Date.now();
  const clock = (): string => `${((Date.now() - started) / 1000).toFixed(1).padStart(5)}s`;
  const agents = new Map<string, AgentProcess>();
  const say = (text: string): void => void process.stdout.write(`${clock()}  ${text}\n`);

  const launch = async (name: string, bind: string, seeds: string[]): Promise<AgentProcess> => {
    const server = servers.get(name) ?? await webServer(name);
    servers.set(name, server);
    const port = (server.address() as { port: number }).port;
    const check = { http: `http://127.0.0.1:${port}/health`, intervalMs: 1_000 };
    const agent = new AgentProcess({ name, bind, seeds, profile: 'lan', services: [{ name: 'web', port, tags: ['demo'], check }] });
    agents.set(name, agent);
    await agent.ready();
    return agent;
  };
  /** Seen-by table: one row per running member, one column per member name. */
  const printTable = async (): Promise<void> => {
    const rows: string[] = [`${'seen by'.padEnd(10)}${names.map((n) => n.padEnd(9)).join('')}`];
    for (const [name, agent] of agents) {
      if (!agent.running) continue;
      const members = await agent.members();
      const state = (n: string): string => (n === name ? 'self' : members.find((m) => m.name === n)?.state ?? '-');
      rows.push(`${name.padEnd(10)}${names.map((n) => state(n).padEnd(9)).join('')}`);
    }
    process.stdout.write(`\n${rows.map((r) => `        ${r}`).join('\n')}\n\n`);
  };
  const printLookup = async (from: string): Promise<number> => {
    const instances = await (agents.get(from) as AgentProcess).lookup('web');
    const list = instances.map((i) => `${i.address}:${i.port} (${i.node}, ${i.health})`).sort();
    say(`${from}: lookup('web') -> ${list.length} instances: ${list.join(', ')}`);
    return list.length;
  };
  /** Waits until every running member lists `want` web instances, all passing (a re-registered one starts critical until its first check). */
  const allLookups = async (want: number, what: string): Promise<void> => {
    const deadline = Date.now() + PHASE_TIMEOUT_MS;
    for (;;) {
      const counts = await Promise.all([...agents.values()].filter((a) => a.running).map(async (a) => (await a.lookup('web')).filter((i) => i.health === 'passing').length));
      if (counts.every((c) => c === want)) return;
      if (Date.now() > deadline) throw new Error(`demo: timed out waiting for ${what}`);
      await new Promise((r) => setTimeout(r, 200));
    }
  };
  const everyone = async (check: (observer: string, states: Map<string, string>) => boolean, what: string): Promise<void> => {
    const deadline = Date.now() + PHASE_TIMEOUT_MS;
    for (;;) {
      let ok = true;
      for (const [name, agent] of agents) {
        if (!agent.running) continue;
        const states = new Map((await agent.members()).map((m) => [m.name, m.state]));
        if (!check(name, states)) ok = false;
      }
      if (ok) return;
      if (Date.now() > deadline) throw new Error(`demo: timed out waiting for ${what}`);
      await new Promise((r) => setTimeout(r, 200));
    }
  };
  /** Prints each member's suspect/dead/joined/alive events about `subject` as they happen. */
  const narrate = (subject: string): (() => void) => {
    const seen = new Map<string, number>();
    const wasDead = new Set<string>();
    const timer = setInterval(() => {
      for (const [name, agent] of agents) {
        if (!agent.running) continue;
        const from = seen.get(name) ?? agent.lines.length;
        for (const l of agent.lines.slice(from)) {
          if (l.member !== subject || l.event === undefined) continue;
          // A member that comes back after being declared dead is new to the table again: it "joins" a second time.
          const event = l.event === 'joined' && wasDead.has(name) ? 'rejoined' : l.event;
          if (l.event === 'dead') wasDead.add(name);
          say(`${name} sees ${subject} ${event} (incarnation ${l.incarnation})`);
        }
        seen.set(name, agent.lines.length);
      }
    }, 50);
    timer.unref();
    return () => clearInterval(timer);
  };

  try {
    say(`starting ${count} members on 127.0.0.1, one process each (profile lan)`);
    const first = await launch(names[0] as string, '127.0.0.1:0', []);
    await Promise.all(names.slice(1).map((n) => launch(n, '127.0.0.1:0', [first.address])));
    await everyone((_, s) => names.every((n) => s.get(n) === 'alive'), 'all members to see each other');
    say('every member sees every other member alive');
    await printTable();
    await allLookups(count, 'every registry to list every web instance');
    await printLookup(names[0] as string);

    const victim = names[Math.floor(count / 2)] as string;
    const victimAgent = agents.get(victim) as AgentProcess;
    const victimAddress = victimAgent.address;
    const stopNarrating = narrate(victim);
    say(`SIGKILL ${victim} (pid ${victimAgent.pid}): no goodbye, the others must notice the silence.`);
    say('  (Each member probes a random other every second. One that does not answer, directly or');
    say('   through others, becomes "suspect"; if it does not deny it in time, it is declared "dead".)');
    victimAgent.signal('SIGKILL');
    await victimAgent.exited;
    await everyone((o, s) => o === victim || s.get(victim) === 'dead', `everyone to declare ${victim} dead`);
    say(`all ${count - 1} remaining members declared ${victim} dead`);
    await printTable();
    await allLookups(count - 1, `${victim}'s instance to leave every lookup`);
    await printLookup(names[0] as string);

    say(`restarting ${victim} on ${victimAddress} under the same name`);
    say('  (Every member carries an incarnation number that only it may raise. News about a member');
    say('   with a higher incarnation replaces older news. The new process hears it was declared dead');
    say('   and announces itself with a higher incarnation than that verdict: it refutes its death.)');
    await launch(victim, victimAddress, [first.address]);
    await everyone((_, s) => names.every((n) => s.get(n) === 'alive'), `${victim} to rejoin`);
    stopNarrating();
    say(`${victim} is back: everyone took its higher incarnation over the old death notice`);
    await printTable();
    await allLookups(count, `${victim}'s instance to return to every lookup`);
    await printLookup(names[0] as string);

    say('every member leaves gracefully');
    await Promise.all([...agents.values()].map(async (a) => {
      a.send('leave');
      const timer = setTimeout(() => a.signal('SIGKILL'), 10_000);
      await a.exited;
      clearTimeout(timer);
    }));
    say('done');
  } finally {
    for (const a of agents.values()) if (a.running) a.signal('SIGKILL');
    for (const s of servers.values()) s.close();
  }
}
