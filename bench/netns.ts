/**
 * A network namespace of the bench's own (bench/chaos.ts, bench/fidelity.ts): the script runs
 * itself again inside it, so every member's traffic stays on that namespace's loopback, where
 * iptables drops a chosen share of UDP and TCP packets. Root only. The namespace is removed,
 * and every process in it killed, on every exit path of the outer process.
 */
import { execFileSync, spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { sleep } from './clusters.js';

/**
 * Outside (`inside` undefined): makes the namespace, runs `script` in it with the same arguments
 * plus `--inside <name>`, bounded by `deadlineMs`, and exits with its code; never returns.
 * Inside: returns at once.
 */
export async function enterNamespace(bench: string, script: string, inside: string | undefined, deadlineMs: number): Promise<void> {
  if (inside !== undefined) return;
  if (process.getuid?.() !== 0) {
    console.error(`${bench} makes a network namespace and iptables rules: run it as root.`);
    process.exit(2);
  }
  for (const [program, install] of [['ip', 'iproute2'], ['iptables', 'iptables']] as const) {
    try {
      execFileSync(program, ['-V'], { stdio: 'ignore' });
    } catch {
      console.error(`${bench} needs ${program}: apt-get install -y ${install}`);
      process.exit(2);
    }
  }
  const ns = `grapevine-${bench.replace(/\W+/g, '-')}-${process.pid}`;
  const sh = (...args: string[]): void => void execFileSync(args[0] as string, args.slice(1), { stdio: 'ignore' });
  let removed = false;
  const remove = (): void => {
    if (removed) return;
    removed = true;
    try {
      // Every process in the namespace was started by this bench.
      const pids = execFileSync('ip', ['netns', 'pids', ns], { encoding: 'utf8' }).split('\n').filter((p) => /^\d+$/.test(p));
      for (const pid of pids) {
        try {
          process.kill(Number(pid), 'SIGKILL');
        } catch {
          // gone already
        }
      }
    } catch {
      // no namespace, or no processes in it
    }
    try {
      sh('ip', 'netns', 'del', ns);
    } catch {
      // not created
    }
  };
  process.on('exit', remove);
  for (const sig of ['SIGINT', 'SIGTERM'] as const) process.on(sig, () => process.exit(130));
  sh('ip', 'netns', 'add', ns);
  sh('ip', 'netns', 'exec', ns, 'ip', 'link', 'set', 'lo', 'up');
  const path = script.startsWith('file:') ? fileURLToPath(script) : script;
  const child = spawn('ip', ['netns', 'exec', ns, process.execPath, '--import', 'tsx', path, ...process.argv.slice(2), '--inside', ns], { stdio: 'inherit' });
  const timer = setTimeout(() => {
    console.error(`${bench}: over its ${deadlineMs / 1000} s bound; stopping`);
    child.kill('SIGKILL');
  }, deadlineMs);
  const code = await new Promise<number>((resolve) => child.once('exit', (c) => resolve(c ?? 1)));
  clearTimeout(timer);
  remove();
  process.exit(code);
}

/** Drops the share `p` of UDP and TCP packets arriving on this namespace's interfaces (0: none). */
export function setLoss(p: number): void {
  execFileSync('iptables', ['-F', 'INPUT']);
  if (p <= 0) return;
  for (const proto of ['udp', 'tcp']) {
    execFileSync('iptables', ['-A', 'INPUT', '-p', proto, '-m', 'statistic', '--mode', 'random', '--probability', String(p), '-j', 'DROP']);
  }
}

/** Sends 2,000 datagrams to itself on the namespace's loopback under the current rules: the share lost. */
export async function measuredLoss(): Promise<number> {
  const { createSocket } = await import('node:dgram');
  const socket = createSocket('udp4');
  await new Promise<void>((r) => socket.bind(0, '127.0.0.1', r));
  let got = 0;
  socket.on('message', () => got++);
  const port = socket.address().port;
  const sent = 2_000;
  for (let i = 0; i < sent; i++) {
    socket.send(Buffer.alloc(32), port, '127.0.0.1');
    if (i % 100 === 99) await sleep(5);
  }
  await sleep(300);
  socket.close();
  return 1 - got / sent;
}

/** A small seeded generator (mulberry32), so runs choose the same members. */
export function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4_294_967_296;
  };
}
