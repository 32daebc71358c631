import { reportError } from './exit.js';
import { checkPathEnv } from './state/paths.js';

// Commands answered without commander, run by root, exactly these words.
// `nsroute list` and `nsroute list --json`: the commonest
// read, answered without commander. Its definitions of the command line are the main chunk,
// ~140 KB of code to load for a command whose own work at 1 NAME is less than that (issue 11:
// list's target is 1.3x `node -e 0`). The same steps as commander's path (cli.ts): the
// environment check, the id bases and their warning, the listing; errors are one line and
// the same exit codes (exit.ts). Anything else (another verb, an option, --help, a caller
// who entered through sudo, whose commands the policy checks) goes through cli.ts.
//
// And `nsroute exec NAME -- COMMAND...` (no option, NAME not starting with '-', a command
// after `--`): how it is aliased and scripted, and with NAME up the hot exec, whose own work
// is a few ms. The same steps as commander's exec action: the environment check, the runner
// started while exec's code loads, runInNamespace with no options, errors as exec's (125).
export function fastPath(argv: readonly string[]): (() => Promise<number>) | undefined {
  if (typeof process.geteuid !== 'function' || process.geteuid() !== 0) return undefined;
  const [verb, ...rest] = argv.slice(2);
  if (verb === 'exec' && rest.length >= 3 && rest[1] === '--' && !rest[0]!.startsWith('-')) {
    const [name, , ...command] = rest as [string, string, ...string[]];
    return async () => {
      try {
        checkPathEnv();
        (await import('./state/lock.js')).startRunnerForExec();
        return await (await import('./commands/exec.js')).runInNamespace(name, command, {});
      } catch (e) {
        return reportError(e, true);
      }
    };
  }
  if (verb !== 'list' || rest.length > 1 || (rest.length === 1 && rest[0] !== '--json')) return undefined;
  return async () => {
    try {
      checkPathEnv();
      (await import('./sys/ids.js')).loadIdsOrSayWhy();
      return await (await import('./commands/list.js')).runList({ json: rest[0] === '--json' });
    } catch (e) {
      return reportError(e, false);
    }
  };
}
