import { Command, CommanderError } from 'commander';
import { constants } from 'node:os';
import { HostError, Interrupted, UserError } from './errors.js';
import { permissionError } from './sys/caps.js';
import { checkPathEnv } from './state/paths.js';
import { addRouteOptions } from './commands/options.js';
import { runInNamespace, type ExecOptions } from './commands/exec.js';
import { runUp } from './commands/up.js';
import { runGc } from './commands/gc.js';
import { runWatch } from './commands/watch.js';
import { runAttach, runDetach, runDisable, runEnable } from './commands/units.js';
import { runDown } from './commands/down.js';
import { runList, runStatus } from './commands/list.js';
import { runCheck } from './commands/check.js';
import { runCompletion, runComplete, runSpec } from './commands/completion-cmd.js';
import { COMMAND_EXAMPLES, PROGRAM_EXAMPLES, examplesText } from './commands/examples.js';
import { loadIds } from './sys/ids.js';
import { runDoctor } from './commands/doctor.js';
import pkg from '../package.json';

// Exit codes, decided here and only here.
export const EXIT = {
  ok: 0,
  failure: 1, // the system failed (a tool, the kernel)
  usage: 2, // bad input; nothing changed
  execFailed: 125, // exec/shell: nsroute itself failed (env/chroot/docker convention)
} as const;

function formatError(e: unknown): string {
  e = permissionError(e) ?? e;
  if (e instanceof UserError || e instanceof HostError) return `nsroute: ${e.message}${e.hint ? `; ${e.hint}` : ''}`;
  if (e instanceof Error) return `nsroute: ${e.message}`;
  return `nsroute: ${String(e)}`;
}

function buildProgram(result: { code: number; isExec: boolean }): Command {
  const program = new Command('nsroute')
    .description('Give a program its own route to the network: its own gateway and DNS, everything else unchanged.')
    .version(pkg.version)
    .exitOverride()
    // Before any verb acts: settings that would point root's state somewhere unintended.
    .hook('preAction', () => checkPathEnv())
    // Parse errors are one line like every other error: problem, then the fix.
    .configureOutput({
      outputError: (text, write) => write(`nsroute: ${text.replace(/^error: /, '').trimEnd()}; see \`nsroute --help\`\n`),
    });

  const execLike = (cmd: Command) =>
    addRouteOptions(cmd)
      .option('--user <user>', 'run as this user (default: the user who ran sudo)')
      .option('--as-root', 'run as root even under sudo')
      .hook('preAction', () => {
        result.isExec = true;
      });

  execLike(
    program
      .command('exec')
      .description('run a command inside NAME (created for it and removed after, unless it is up)')
      .argument('<name>', 'namespace name (profile /etc/nsroute/NAME.toml)')
      .argument('<command...>', 'the command, after --'),
  ).action(async (name: string, command: string[], opts: ExecOptions) => {
    result.code = await runInNamespace(name, command, opts);
  });

  execLike(
    program.command('shell').description("start your login shell inside NAME").argument('<name>', 'namespace name'),
  ).action(async (name: string, opts: ExecOptions) => {
    result.code = await runInNamespace(name, 'login-shell', opts);
  });

  addRouteOptions(program.command('up').description('bring NAME up and keep it until `nsroute down`').argument('<name>', 'namespace name'))
    .option('--json', 'print the status as JSON')
    .option('--no-watch', 'do not start `nsroute watch NAME` in the background (routes then come back at the next command on NAME)')
    .option('--require-profile', "fail when NAME has no profile instead of using the defaults (the systemd unit's way)")
    .action(async (name: string, opts) => {
      result.code = await runUp(name, opts);
    });

  program
    .command('down')
    .description('remove NAME and everything nsroute added for it')
    .argument('<name>', 'namespace name')
    .option('--force', 'end the commands still running inside first')
    .option('--json', 'print the result as JSON')
    .action(async (name: string, opts) => {
      result.code = await runDown(name, opts);
    });

  program
    .command('list')
    .description('show the namespaces nsroute manages')
    .option('--json', 'print JSON (an array of status objects)')
    .action(async (opts) => {
      result.code = await runList(opts);
    });

  program
    .command('status')
    .description('show one namespace (exit 3 when it is not up)')
    .argument('<name>', 'namespace name')
    .option('--json', 'print JSON')
    .action(async (name: string, opts) => {
      result.code = await runStatus(name, opts);
    });

  program
    .command('check')
    .description('prove from inside NAME where its traffic and DNS go (exit 4 when something leaks or is broken, 3 when it is not up)')
    .argument('<name>', 'namespace name')
    .option('--json', 'print JSON')
    .option('--name <dnsname>', 'name the DNS probe asks each server for (default: nsroute-check.invalid)')
    .addHelpText('after', '\nExit codes: 0 all checks passed; 4: check found a leak or something broken; 3 NAME is not up; 2 bad input; 1 a system tool failed.')
    .action(async (name: string, opts) => {
      result.code = await runCheck(name, opts);
    });

  program
    .command('enable')
    .description('bring NAME up at boot from its profile: install and enable the systemd unit nsroute-NAME.service')
    .argument('<name>', 'namespace name (profile /etc/nsroute/NAME.toml)')
    .option('--now', 'also start it now')
    .option('--json', 'print the result as JSON')
    .action(async (name: string, opts) => {
      result.code = await runEnable(name, opts);
    });

  program
    .command('disable')
    .description('undo enable: disable and remove nsroute-NAME.service')
    .argument('<name>', 'namespace name')
    .option('--now', 'also stop it now (takes NAME down)')
    .option('--json', 'print the result as JSON')
    .action(async (name: string, opts) => {
      result.code = await runDisable(name, opts);
    });

  program
    .command('attach')
    .description('run a systemd service inside NAME (a drop-in: its network, DNS files, bound to nsroute-NAME.service)')
    .argument('<name>', 'namespace name (enabled)')
    .argument('<unit>', 'service, e.g. transmission-daemon')
    .option('--json', 'print the result as JSON')
    .action(async (name: string, unit: string, opts) => {
      result.code = await runAttach(name, unit, opts);
    });

  program
    .command('detach')
    .description('undo attach: remove the drop-in')
    .argument('<name>', 'namespace name')
    .argument('<unit>', 'service')
    .option('--json', 'print the result as JSON')
    .action(async (name: string, unit: string, opts) => {
      result.code = await runDetach(name, unit, opts);
    });

  program
    .command('watch')
    .description('keep namespaces right in the foreground: put routes back when an uplink returns, restore a flushed firewall')
    .argument('[names...]', 'namespace names (default: all)')
    .option('--json', 'print each repair as a JSON line')
    .action(async (names: string[], opts) => {
      result.code = await runWatch(names, opts);
    });

  program
    .command('gc')
    .description('clean up after crashes, kills and reboots: drop dead holders, undo interrupted changes, remove unused namespaces and leftovers')
    .option('--json', 'print what was done as JSON')
    .action(async (opts) => {
      result.code = await runGc(opts);
    });

  program
    .command('doctor')
    .description('say what this machine can and cannot do for nsroute, and why, with the fix for each (exit 4 when nsroute cannot work here)')
    .option('--json', 'print JSON')
    .action(async (opts) => {
      result.code = await runDoctor(opts);
    });

  program
    .command('completion')
    .description('print the shell completion script for bash, zsh or fish')
    .argument('<shell>', 'bash, zsh or fish')
    .action((shell: string) => {
      result.code = runCompletion(program, shell);
    });

  // For the completion scripts and the man page generator (scripts/man.mjs); not for users.
  program
    .command('__complete', { hidden: true })
    .argument('<kind>')
    .action((kind: string) => {
      result.code = runComplete(kind);
    });
  program
    .command('__spec', { hidden: true })
    .action(() => {
      result.code = runSpec(program);
    });

  // The id bases of /etc/nsroute/nsroute.conf, read once before any command plans; not for
  // the commands that only print (completion) or report on them (doctor).
  program.hook('preAction', (_program, action) => {
    if (['completion', '__complete', '__spec', 'doctor'].includes(action.name())) return;
    const loaded = loadIds();
    if (loaded.deferred) {
      process.stderr.write(`nsroute: ${loaded.file ?? 'the default ids'}: not in effect yet; namespaces created with mark base 0x${loaded.ids.markBase.toString(16)} and table base ${loaded.ids.tableBase} keep them until they are gone\n`);
    }
  });

  program.addHelpText('after', examplesText(PROGRAM_EXAMPLES));
  for (const c of program.commands) {
    const examples = COMMAND_EXAMPLES[c.name()];
    if (examples) c.addHelpText('after', examplesText(examples));
  }
  return program;
}

const EXEC_VERBS = new Set(['exec', 'shell']);

export async function main(argv: string[]): Promise<number> {
  const result = { code: EXIT.ok as number, isExec: EXEC_VERBS.has(argv[2] ?? '') };
  const program = buildProgram(result);
  try {
    await program.parseAsync(argv);
    return result.code;
  } catch (e) {
    if (e instanceof CommanderError) {
      // --help and --version end through here with exit code 0.
      if (e.exitCode === 0) return EXIT.ok;
      return result.isExec ? EXIT.execFailed : EXIT.usage;
    }
    process.stderr.write(formatError(e) + '\n');
    // Like a process the signal ended (exec, too: it already answers 128+N for a signal that
    // arrives before the command starts); 125 would claim nsroute itself failed.
    if (e instanceof Interrupted) return 128 + (constants.signals[e.signal] ?? 0);
    if (result.isExec) return EXIT.execFailed;
    return e instanceof UserError ? EXIT.usage : EXIT.failure;
  }
}
