/**
 * Tests that need a real program (Prometheus, Chromium, python3-consul...): with CI set, a
 * missing one fails the test; elsewhere the test is skipped with one printed line naming the
 * program and how to install it.
 */
import { execFileSync } from 'node:child_process';

/** True if `check` passes; else prints one line (or, under CI, throws) naming `program` and `install`. */
export function available(program: string, check: () => void, install: string): boolean {
  try {
    check();
    return true;
  } catch {
    if (process.env.CI !== undefined && process.env.CI !== '' && process.env.CI !== 'false') {
      throw new Error(`${program} is required under CI but missing: ${install}`);
    }
    console.log(`skipped: needs ${program} (${install})`);
    return false;
  }
}

/** Runs `file args` and discards its output; throws if it cannot run or fails. */
export function runs(file: string, args: string[]): () => void {
  return () => void execFileSync(file, args, { stdio: 'ignore', timeout: 10_000 });
}

/** Stops a program this test started, by its PID: SIGTERM, then SIGKILL after `graceMs`. */
export async function stopProgram(child: import('node:child_process').ChildProcess | undefined, graceMs = 5_000): Promise<void> {
  if (child?.pid === undefined || child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise((r) => child.once('exit', r));
  const signal = (sig: NodeJS.Signals): void => {
    try {
      process.kill(child.pid as number, sig);
    } catch {
      // already gone
    }
  };
  signal('SIGTERM');
  const timer = setTimeout(() => signal('SIGKILL'), graceMs);
  await exited;
  clearTimeout(timer);
}

/** A TCP port free on 127.0.0.1 right now (bound, read, released), for a program the test starts. */
export async function freePort(): Promise<number> {
  const { createServer } = await import('node:net');
  const s = createServer();
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
  const port = (s.address() as { port: number }).port;
  await new Promise((r) => s.close(r));
  return port;
}
