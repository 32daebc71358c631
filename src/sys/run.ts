import { execa } from 'execa';
import { SysError } from '../errors.js';
import { callerContext } from '../policy/context.js';

export interface RunResult {
  stdout: string;
  stderr: string;
  exitCode: number;
}

// The one execa seam: argv arrays only, never a shell string. Failures become SysErrors
// carrying argv, exit code and stderr.
export async function run(argv: readonly string[], opts: { input?: string; allowFail?: boolean } = {}): Promise<RunResult> {
  const [file, ...args] = argv;
  const res = await execa(file!, args, {
    input: opts.input,
    reject: false,
    stripFinalNewline: true,
    env: { LC_ALL: 'C' },
    // For a user who entered through sudo: tools in a session of their own, so the user's
    // terminal (^Z) cannot stop one while nsroute holds the host lock (docs/unprivileged.md).
    detached: callerContext() !== undefined,
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
