import { Command, CommanderError } from 'commander';
import { EXIT, formatError, reportError } from './exit.js';
import { checkPathEnv } from './state/paths.js';
import { addRouteOptions } from './commands/route-options.js';
import type { ExecOptions } from './commands/exec.js';
import { COMMAND_EXAMPLES, PROGRAM_EXAMPLES, examplesText } from './commands/examples.js';
import { version } from '../package.json';

// Start-up is most of what a short command costs (issue 11): only commander and the command
// line's own definitions load with this file. Each verb's module, and with it execa, ip-cidr,
// smol-toml and the rest of nsroute, is imported when that verb runs (esbuild splits them into
// chunks of their own, scripts/build.mjs), so `--help`, `list` or a completion does not pay for
// `exec`'s code, nor any verb for `doctor`'s.

export { EXIT } from './exit.js';

// exec and shell always run tools and take the host lock: the runner (sys/runner.ts) starts
// while their code loads, holding the lock file for them (state/lock.ts).
async function warmRunner(): Promise<void> {
  (await import('./state/lock.js')).startRunnerForExec();
}

// only: the verb this command line runs; no other is defined (commander's definitions of all
// of them cost a short command a few ms). undefined: all of them, for help, an unknown verb,
// and the commands that print the whole command line (completion).
function buildProgram(result: { code: number; isExec: boolean }, quiet = false, only?: string): Command {
  const program = new Command('nsroute')
    .description('Give a program its own route to the network: its own gateway and DNS, everything else unchanged.')
    .version(version)
    .exitOverride()
    // Before any verb acts: settings that would point root's state somewhere unintended.
    .hook('preAction', () => checkPathEnv())
    // A user who entered through sudo (policy/entry.ts): only what the profiles allow them.
    // Loaded only then: root's own commands do not pay for the policy code.
    .hook('preAction', async (_program, action) => {
      if (enteredFromSudo) await (await import('./policy/enforce.js')).enforceCaller(action);
    })
    // Parse errors are one line like every other error: problem, then the fix.
    .configureOutput({
      outputError: (text, write) => write(`nsroute: ${text.replace(/^error: /, '').trimEnd()}; see \`nsroute --help\`\n`),
      ...(quiet ? { writeOut: () => undefined, writeErr: () => undefined } : {}),
    });

  const verb = (name: string, opts?: { hidden: boolean }): Command | undefined => (only === undefined || only === name ? program.command(name, opts) : undefined);

  const execLike = (cmd: Command | undefined) =>
    cmd &&
    addRouteOptions(cmd)
      .option('--user <user>', 'run as this user (default: the user who ran sudo)')
      .option('--as-root', 'run as root even under sudo')
      .hook('preAction', () => {
        result.isExec = true;
      });

  execLike(
    verb('exec')
      ?.description('run a command inside NAME (created for it and removed after, unless it is up)')
      .argument('<name>', 'namespace name (profile /etc/nsroute/NAME.toml)')
      .argument('<command...>', 'the command, after --'),
  )?.action(async (name: string, command: string[], opts: ExecOptions) => {
    await warmRunner();
    const { runInNamespace } = await import('./commands/exec.js');
    result.code = await runInNamespace(name, command, opts);
  });

  execLike(
    verb('shell')?.description("start your login shell inside NAME").argument('<name>', 'namespace name'),
  )?.action(async (name: string, opts: ExecOptions) => {
    await warmRunner();
    const { runInNamespace } = await import('./commands/exec.js');
    result.code = await runInNamespace(name, 'login-shell', opts);
  });

  const up = verb('up');
  if (up)
    addRouteOptions(up.description('bring NAME up and keep it until `nsroute down`').argument('<name>', 'namespace name'))
      .option('--json', 'print the status as JSON')
      .option('--no-watch', 'leave NAME out of the background watcher, `nsroute watch` (routes then come back at the next command on NAME)')
      .option('--require-profile', "fail when NAME has no profile instead of using the defaults (the systemd unit's way)")
      .action(async (name: string, opts) => {
        const { runUp } = await import('./commands/up.js');
        result.code = await runUp(name, opts);
      });

  verb('down')
    ?.description('remove NAME and everything nsroute added for it')
    .argument('<name>', 'namespace name')
    .option('--force', 'end the commands still running inside first')
    .option('--json', 'print the result as JSON')
    .action(async (name: string, opts) => {
      const { runDown } = await import('./commands/down.js');
      result.code = await runDown(name, opts);
    });

  verb('list')
    ?.description('show the namespaces nsroute manages')
    .option('--json', 'print JSON (an array of status objects)')
    .action(async (opts) => {
      const { runList } = await import('./commands/list.js');
      result.code = await runList(opts);
    });

  verb('status')
    ?.description('show one namespace (exit 3 when it is not up)')
    .argument('<name>', 'namespace name')
    .option('--json', 'print JSON')
    .action(async (name: string, opts) => {
      const { runStatus } = await import('./commands/list.js');
      result.code = await runStatus(name, opts);
    });

  verb('check')
    ?.description('prove from inside NAME where its traffic and DNS go (exit 4 when something leaks or is broken, 3 when it is not up)')
    .argument('<name>', 'namespace name')
    .option('--json', 'print JSON')
    .option('--name <dnsname>', 'name the DNS probe asks each server for (default: nsroute-check.invalid)')
    .addHelpText('after', '\nExit codes: 0 all checks passed; 4: check found a leak or something broken; 3 NAME is not up; 2 bad input; 1 a system tool failed.')
    .action(async (name: string, opts) => {
      const { runCheck } = await import('./commands/check.js');
      result.code = await runCheck(name, opts);
    });

  verb('enable')
    ?.description('bring NAME up at boot from its profile: install and enable the systemd unit nsroute-NAME.service')
    .argument('<name>', 'namespace name (profile /etc/nsroute/NAME.toml)')
    .option('--now', 'also start it now')
    .option('--json', 'print the result as JSON')
    .action(async (name: string, opts) => {
      const { runEnable } = await import('./commands/units.js');
      result.code = await runEnable(name, opts);
    });

  verb('disable')
    ?.description('undo enable: disable and remove nsroute-NAME.service')
    .argument('<name>', 'namespace name')
    .option('--now', 'also stop it now (takes NAME down)')
    .option('--json', 'print the result as JSON')
    .action(async (name: string, opts) => {
      const { runDisable } = await import('./commands/units.js');
      result.code = await runDisable(name, opts);
    });

  verb('attach')
    ?.description('run a systemd service inside NAME (a drop-in: its network, DNS files, bound to nsroute-NAME.service)')
    .argument('<name>', 'namespace name (enabled)')
    .argument('<unit>', 'service, e.g. transmission-daemon')
    .option('--json', 'print the result as JSON')
    .action(async (name: string, unit: string, opts) => {
      const { runAttach } = await import('./commands/units.js');
      result.code = await runAttach(name, unit, opts);
    });

  verb('detach')
    ?.description('undo attach: remove the drop-in')
    .argument('<name>', 'namespace name')
    .argument('<unit>', 'service')
    .option('--json', 'print the result as JSON')
    .action(async (name: string, unit: string, opts) => {
      const { runDetach } = await import('./commands/units.js');
      result.code = await runDetach(name, unit, opts);
    });

  verb('watch')
    ?.description('keep namespaces right: put routes back when an uplink returns, restore a flushed firewall (without NAMEs: the host\'s one watcher, which `up` starts)')
    .argument('[names...]', 'namespace names (default: every persistent one not up with --no-watch)')
    .option('--json', 'print each repair as a JSON line')
    .action(async (names: string[], opts) => {
      const { runWatch } = await import('./commands/watch.js');
      result.code = await runWatch(names, opts);
    });

  verb('move')
    ?.description('move running processes into cgroup-mode NAME (new connections take its route), or --out back where they came from')
    .argument('<name-or-pid...>', 'NAME then PIDs; with --out, only PIDs')
    .option('--tree', 'also move all their descendants (a cgroup move does not take children along)')
    .option('--out', 'move the PIDs out of their NAME, back to the cgroup each came from')
    .option('--json', 'print what was moved as JSON')
    .action(async (args: string[], opts) => {
      const { runMove } = await import('./commands/move.js');
      result.code = await runMove(args, opts);
    });

  verb('gc')
    ?.description('clean up after crashes, kills and reboots: drop dead holders, undo interrupted changes, remove unused namespaces and leftovers')
    .option('--json', 'print what was done as JSON')
    .action(async (opts) => {
      const { runGc } = await import('./commands/gc.js');
      result.code = await runGc(opts);
    });

  verb('allow')
    ?.description('let users or %groups use NAME without root (the allow key of its profile), and install what sudo needs; alone: apply the profiles as they are')
    .argument('[name]', 'namespace name (its profile must exist)')
    .argument('[who...]', 'user names and %group names')
    .option('--json', 'print the result as JSON')
    .action(async (name: string | undefined, who: string[], opts) => {
      const { runAllow } = await import('./commands/allow.js');
      result.code = await runAllow(name, who, opts);
    });

  verb('disallow')
    ?.description('undo allow: remove users or %groups from the allow key of NAME')
    .argument('<name>', 'namespace name')
    .argument('<who...>', 'user names and %group names')
    .option('--json', 'print the result as JSON')
    .action(async (name: string, who: string[], opts) => {
      const { runDisallow } = await import('./commands/allow.js');
      result.code = await runDisallow(name, who, opts);
    });

  verb('doctor')
    ?.description('say what this machine can and cannot do for nsroute, and why, with the fix for each (exit 4 when nsroute cannot work here)')
    .option('--json', 'print JSON')
    .action(async (opts) => {
      const { runDoctor } = await import('./commands/doctor.js');
      result.code = await runDoctor(opts);
    });

  verb('completion')
    ?.description('print the shell completion script for bash, zsh or fish')
    .argument('<shell>', 'bash, zsh or fish')
    .action(async (shell: string) => {
      const { runCompletion } = await import('./commands/completion-cmd.js');
      result.code = runCompletion(program, shell);
    });

  // For the completion scripts and the man page generator (scripts/man.mjs); not for users.
  verb('__complete', { hidden: true })
    ?.argument('<kind>')
    .action(async (kind: string) => {
      const { runComplete } = await import('./commands/complete-words.js');
      result.code = runComplete(kind);
    });
  verb('__spec', { hidden: true })
    ?.action(async () => {
      const { runSpec } = await import('./commands/completion-cmd.js');
      result.code = runSpec(program);
    });

  // The id bases of /etc/nsroute/nsroute.conf, read once before any command plans; not for
  // the commands that only print (completion) or report on them (doctor). exec and shell read
  // them once their read of the host has started (it reads every state: at 1000 NAMEs it
  // delayed the tools that long), and only when they do not join NAME without the lock.
  program.hook('preAction', async (_program, action) => {
    if (['completion', '__complete', '__spec', 'doctor', ...EXEC_VERBS].includes(action.name())) return;
    (await import('./sys/ids.js')).loadIdsOrSayWhy();
  });

  program.addHelpText('after', examplesText(PROGRAM_EXAMPLES));
  for (const c of program.commands) {
    const examples = COMMAND_EXAMPLES[c.name()];
    if (examples) c.addHelpText('after', examplesText(examples));
  }
  return program;
}

const EXEC_VERBS = new Set(['exec', 'shell']);
// The verbs a command line is defined for alone (buildProgram's only): all but those that print
// the whole command line.
const ONE_VERB = new Set(['exec', 'shell', 'up', 'down', 'list', 'status', 'check', 'enable', 'disable', 'attach', 'detach', 'watch', 'move', 'gc', 'allow', 'disallow', 'doctor']);

// For the code caches only (src/loader.ts writeCodeCaches, at build and install time): run
// what nearly every command runs before and around its verb, so that the caches hold that code
// compiled, not only the chunks' top levels. No verb runs, nothing changes on the machine:
// - the command line: commander parses, prints help and fails on a bad option (each ends in
//   commander before any hook or action), printing nothing;
// - execa's spawning through sys/run.ts (every verb that acts spawns ip, nft or flock), with
//   `node -e` as the child: with and without input, failing and not.
export async function warmUp(): Promise<void> {
  for (const args of [['--help'], ['exec', '--help'], ['list', '--bogus']]) {
    try {
      buildProgram({ code: EXIT.ok, isExec: false }, true).parse(['node', 'nsroute', ...args]);
    } catch (e) {
      if (!(e instanceof CommanderError)) throw e;
    }
  }
  const { run, runJson } = await import('./sys/run.js');
  await runJson([process.execPath, '-e', 'process.stdout.write("[]")']);
  await run([process.execPath, '-e', 'process.stdin.resume()'], { input: '\n' });
  await run([process.execPath, '-e', 'process.exit(3)'], { allowFail: true });
}

// Set when this run is the root side of an allowed user's command (policy/entry.ts).
let enteredFromSudo = false;

export async function main(argv: string[]): Promise<number> {
  // A user who is not root goes through sudo; the root side of that is policed (policy/).
  // Root's own runs skip this without loading the policy code.
  if (argv[2] === '--from-sudo' || (typeof process.geteuid === 'function' && process.geteuid() !== 0)) {
    try {
      const { routeCaller } = await import('./policy/entry.js');
      const routed = await routeCaller(argv);
      if ('code' in routed) return routed.code;
      enteredFromSudo = argv[2] === '--from-sudo';
      argv = routed.argv;
    } catch (e) {
      process.stderr.write(formatError(e) + '\n');
      return EXEC_VERBS.has(argv[3] ?? '') ? EXIT.execFailed : EXIT.usage;
    }
  }
  const result = { code: EXIT.ok as number, isExec: EXEC_VERBS.has(argv[2] ?? '') };
  const program = buildProgram(result, false, ONE_VERB.has(argv[2] ?? '') ? argv[2] : undefined);
  try {
    await program.parseAsync(argv);
    return result.code;
  } catch (e) {
    if (e instanceof CommanderError) {
      // --help and --version end through here with exit code 0.
      if (e.exitCode === 0) return EXIT.ok;
      return result.isExec ? EXIT.execFailed : EXIT.usage;
    }
    return reportError(e, result.isExec);
  }
}
