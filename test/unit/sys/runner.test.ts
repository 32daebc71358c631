// The tool runner (src/sys/runner.ts) must behave exactly like a direct spawn: argv passed
// untouched without a shell, stdin, stdout and stderr whole, exit codes, signals, a command that
// cannot be run, concurrency; and perl must not load code from the environment.
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { beforeAll, describe, expect, it } from 'vitest';
import { probeNftTable, runViaHelper } from '../../../src/sys/runner.js';

const have = spawnSync('perl', ['-e', '1']).status === 0;

describe.skipIf(!have)('tool runner', () => {
  beforeAll(() => {
    // Read when the runner starts (first job): perl would load this module and die.
    process.env.PERL5OPT = '-Mnsroute_no_such_module';
  });

  it('passes argv as it is: no shell, no word splitting, no globbing', async () => {
    const args = ['a b', '$(touch /nonexistent-nsroute)', '*', "'q'", '', 'ü'];
    const r = (await runViaHelper(['printf', '%s|', ...args], undefined, false))!;
    expect(r).toMatchObject({ exitCode: 0, stderr: '', stdout: args.map((a) => `${a}|`).join('') });
  });

  it('feeds stdin and returns large outputs whole', async () => {
    const input = 'x'.repeat(300_000) + '\n';
    const r = (await runViaHelper(['cat'], input, false))!;
    expect(r.stdout).toBe(input);
    const big = (await runViaHelper(['head', '-c', '1000000', '/dev/zero'], undefined, false))!;
    expect(big.stdout.length).toBe(1_000_000);
  });

  it('reports exit codes, stderr, signals and commands that cannot run', async () => {
    expect(await runViaHelper(['sh', '-c', 'echo out; echo err >&2; exit 7'], undefined, false)).toMatchObject({ exitCode: 7, stdout: 'out\n', stderr: 'err\n' });
    expect(await runViaHelper(['sh', '-c', 'kill -TERM $$'], undefined, false)).toMatchObject({ exitCode: undefined, signal: 15 });
    const missing = (await runViaHelper(['nsroute-no-such-tool'], undefined, false))!;
    expect(missing).toMatchObject({ exitCode: undefined, errno: 2, stderr: '' });
    // A real exit 127 with that text is still an exit 127.
    expect(await runViaHelper(['sh', '-c', 'exit 127'], undefined, false)).toMatchObject({ exitCode: 127, errno: undefined });
  });

  it('runs jobs concurrently and matches each answer to its job', async () => {
    const jobs = Array.from({ length: 20 }, (_, i) => runViaHelper(['sh', '-c', `sleep 0.0${i % 3}; echo ${i}`], undefined, false)!);
    const out = await Promise.all(jobs);
    expect(out.map((r) => r.stdout.trim())).toEqual(Array.from({ length: 20 }, (_, i) => String(i)));
  });

  it('large answers of concurrent jobs arrive whole and each with its own job', async () => {
    // Answers of a few MB come in many chunks, back to back: assembled once each, never mixed.
    const letters = 'abcdef';
    const jobs = [...letters].map((c, i) => runViaHelper(['sh', '-c', `head -c ${(i + 1) * 700_000} /dev/zero | tr '\\0' ${c}; printf '${c}${i}' >&2`], undefined, false)!);
    const out = await Promise.all(jobs);
    out.forEach((r, i) => {
      const c = letters[i]!;
      expect(r.exitCode).toBe(0);
      expect(r.stderr).toBe(`${c}${i}`);
      expect(r.stdout.length).toBe((i + 1) * 700_000);
      expect(r.stdout.split(c).join('')).toBe('');
    });
  });

  // Read-only: asks the kernel about a table no one has; nothing is created.
  it('answers whether an nft table exists itself: exit 1 and no output for a missing one; a name nft must judge goes to nft', async () => {
    const missing = (await probeNftTable('inet', 'nsroute_test_no_such_table'))!;
    expect(missing).toMatchObject({ exitCode: 1, stdout: '', stderr: '', errno: undefined });
    if (spawnSync('nft', ['--version']).status !== 0) return;
    // Not a name the runner asks about (a '-'): nft runs, and says why it fails.
    const byNft = (await probeNftTable('inet', 'no-such-table'))!;
    expect(byNft.exitCode).toBe(1);
    expect(byNft.stderr).toMatch(/no-such-table|No such file/);
  });

  // perl's start is on every command's path to its first tool: `use POSIX` doubled it. The
  // runner maps POSIX's XS library only once a job needs setsid (before this test, none did).
  it('starts without perl modules and loads POSIX for the first setsid job', async () => {
    const maps = async () => {
      const r = (await runViaHelper(['sh', '-c', 'echo $PPID; cat /proc/$PPID/maps'], undefined, false))!;
      const [pid, ...rest] = r.stdout.split('\n');
      return { pid, posix: rest.some((l) => /\/POSIX\.so$/.test(l)), xs: rest.filter((l) => /\/auto\/.*\.so$/.test(l)) };
    };
    const before = await maps();
    expect(before.xs).toEqual([]);
    expect((await runViaHelper(['true'], undefined, true))!.exitCode).toBe(0);
    const after = await maps();
    expect(after.pid).toBe(before.pid);
    expect(after.posix).toBe(true);
  });

  it('setsid puts the tool in a session of its own', async () => {
    const mine = (await runViaHelper(['ps', '-o', 'sess=', '-p', String(process.pid)], undefined, false))!.stdout.trim();
    const own = (await runViaHelper(['sh', '-c', 'ps -o sess= -p $$'], undefined, true))!.stdout.trim();
    const shared = (await runViaHelper(['sh', '-c', 'ps -o sess= -p $$'], undefined, false))!.stdout.trim();
    expect(shared).toBe(mine);
    expect(own).not.toBe(mine);
  });

  it('ends when idle for a second, and the next job starts another', async () => {
    const pidOf = async () => Number((await runViaHelper(['sh', '-c', 'echo $PPID'], undefined, false))!.stdout.trim());
    const first = await pidOf();
    expect(await pidOf()).toBe(first);
    await new Promise((r) => setTimeout(r, 2500));
    expect(existsSync(`/proc/${first}`)).toBe(false);
    expect(await pidOf()).not.toBe(first);
  });

  it('survives the signals a terminal or service manager sends the whole group; its tools get default dispositions', async () => {
    const pid = Number((await runViaHelper(['sh', '-c', 'echo $PPID'], undefined, false))!.stdout.trim());
    for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP', 'SIGTSTP'] as const) process.kill(pid, sig);
    const r = (await runViaHelper(['sh', '-c', 'echo $PPID; grep -E "^Sig(Ign|Blk)" /proc/self/status'], undefined, false))!;
    expect(r.stdout.split('\n')[0]).toBe(String(pid));
    expect(r.stdout).toContain('SigIgn:\t0000000000000000');
  });
});
