import { constants as osConstants } from 'node:os';
import { SysError } from '../errors.js';
import { callerContext } from '../policy/context.js';
import { runViaHelper, type RunnerResult } from './runner.js';

export interface RunResult {
  stdout: string;
  stderr: string;
  exitCode: number;
}

// The one execa seam: argv arrays only, never a shell string. Failures become SysErrors
// carrying argv, exit code and stderr.
// The tools go through one helper process (runner.ts: a fork of a small perl instead of the
// whole Node process per tool), or are spawned directly where there is no perl.
export async function run(argv: readonly string[], opts: { input?: string; allowFail?: boolean } = {}): Promise<RunResult> {
  // For a user who entered through sudo: tools in a session of their own, so the user's
  // terminal (^Z) cannot stop one while nsroute holds the host lock (docs/unprivileged.md).
  const setsid = callerContext() !== undefined;
  let viaHelper: RunnerResult | undefined;
  try {
    viaHelper = await runViaHelper(argv, opts.input, setsid);
  } catch (e) {
    if (!(e as { runnerUnavailable?: boolean }).runnerUnavailable) throw e;
  }
  if (viaHelper) {
    const out = { stdout: stripFinalNewline(viaHelper.stdout), stderr: stripFinalNewline(viaHelper.stderr), exitCode: viaHelper.exitCode ?? -1 };
    if (viaHelper.exitCode !== 0 && !opts.allowFail) {
      const why =
        viaHelper.errno !== undefined ? `could not run: ${errnoName(viaHelper.errno)}` : viaHelper.signal !== undefined ? `killed by signal ${viaHelper.signal}` : `exit ${viaHelper.exitCode}`;
      throw new SysError(`${argv.join(' ')} failed (${why}): ${out.stderr}`.trim(), argv, viaHelper.exitCode, out.stderr);
    }
    return out;
  }
  return runDirect(argv, opts, setsid);
}

function errnoName(n: number): string {
  return Object.entries(osConstants.errno).find(([, v]) => v === n)?.[0] ?? `errno ${n}`;
}

function stripFinalNewline(s: string): string {
  return s.endsWith('\r\n') ? s.slice(0, -2) : s.endsWith('\n') ? s.slice(0, -1) : s;
}

async function runDirect(argv: readonly string[], opts: { input?: string; allowFail?: boolean }, setsid: boolean): Promise<RunResult> {
  const [file, ...args] = argv;
  // Loaded only here: with the runner (the usual case) no command evaluates execa for its tools.
  const { execa } = await import('execa');
  const res = await execa(file!, args, {
    input: opts.input,
    reject: false,
    stripFinalNewline: true,
    env: { LC_ALL: 'C' },
    detached: setsid,
  });
  const out = { stdout: String(res.stdout ?? ''), stderr: String(res.stderr ?? ''), exitCode: res.exitCode ?? -1 };
  if (res.failed && !opts.allowFail) {
    const why = res.exitCode === undefined ? (res.shortMessage ?? 'could not run') : `exit ${res.exitCode}`;
    throw new SysError(`${argv.join(' ')} failed (${why}): ${out.stderr || res.shortMessage || ''}`.trim(), argv, res.exitCode, out.stderr);
  }
  return out;
}

export async function runJson(argv: readonly string[]): Promise<unknown> {
  const { stdout } = await run(argv);
  return stdout.trim() === '' ? [] : JSON.parse(stdout);
}
