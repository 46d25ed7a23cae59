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
