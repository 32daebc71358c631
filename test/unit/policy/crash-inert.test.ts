// The fault hooks (apply/crash.ts) do nothing for a user who entered through sudo, even if
// the variables got through: here they are set, and this process would SIGKILL itself or wait
// forever if they were honoured.
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, expect, it } from 'vitest';
import { crashNow, crashPoint } from '../../../src/apply/crash.js';
import { setCaller } from '../../../src/policy/context.js';

const dir = mkdtempSync(join(tmpdir(), 'nsroute-crash-inert-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

it('ignores NSROUTE_TEST_CRASH and NSROUTE_TEST_PAUSE for a caller', async () => {
  setCaller({ uid: 1000, gid: 1000, name: 'alice', gids: [1000] });
  process.env.NSROUTE_TEST_CRASH = 'apply:0';
  process.env.NSROUTE_TEST_PAUSE = `undo:0:${join(dir, 'pause')}`;
  try {
    await crashPoint('apply', 0);
    await crashPoint('undo', 0);
    process.env.NSROUTE_TEST_CRASH = 'watcher:0';
    crashNow('watcher:0');
    expect(existsSync(join(dir, 'pause.reached'))).toBe(false);
  } finally {
    delete process.env.NSROUTE_TEST_CRASH;
    delete process.env.NSROUTE_TEST_PAUSE;
  }
});
