import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { defineConfig } from 'vitest/config';

// Agents the tests start keep their default data directories here, never in the user's home.
const state = mkdtempSync(join(tmpdir(), 'grapevine-test-state-'));

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    testTimeout: 60_000,
    env: { XDG_STATE_HOME: state },
  },
});
