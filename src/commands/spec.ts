// The command line as data, read from the commander definitions themselves: the shell
// completions (commands/completion.ts) and the man page (scripts/man.mjs, through the hidden
// `nsroute __spec`) are generated from it, so neither is a second hand-kept list of options.
import type { Command } from 'commander';
import { IPV6_MODES, MODES } from '../profile/profile.js';
import { COMMAND_EXAMPLES, PROGRAM_EXAMPLES } from './examples.js';

// What a value is, for completion: a fixed list of words, or a kind that `nsroute __complete
// KIND` lists at TAB time (names of profiles and namespaces, interfaces, bridges, units).
export type ValueKind = readonly string[] | 'name' | 'iface' | 'bridge' | 'unit' | 'attached-unit' | 'user' | 'command' | 'none';
// The dynamic kinds live with their lister, which runs at every TAB and must not load this
// file's imports (profile.ts: smol-toml).
export { DYNAMIC_KINDS, type DynamicKind } from './complete-words.js';

export interface OptionSpec {
  flags: string; // as in --help: "--via <gateway>"
  long: string; // "--via"
  short?: string;
  value?: string; // placeholder without brackets: "gateway"; absent for a switch
  repeatable: boolean;
  description: string;
  values: ValueKind;
}

export interface ArgSpec {
  name: string;
  required: boolean;
  variadic: boolean;
  description: string;
  values: ValueKind;
}

export interface CommandSpec {
  name: string;
  description: string;
  args: ArgSpec[];
  options: OptionSpec[];
  examples: readonly string[];
  helpAfter?: string; // extra text at the end of its --help (exit codes)
}

export interface ProgramSpec {
  name: string;
  version: string;
  description: string;
  options: OptionSpec[];
  commands: CommandSpec[];
  examples: readonly string[];
}

// Completion of option values, by long option name. Fixed word lists come from the profile
// validation's own lists.
const OPTION_VALUES: Record<string, ValueKind> = {
  '--mode': MODES,
  '--ipv6': IPV6_MODES,
  '--dev': 'iface',
  '--uplink': 'iface',
  '--bridge': 'bridge',
  '--user': 'user',
};
// Completion of arguments, by command and argument name.
function argValues(command: string, arg: string): ValueKind {
  if (arg === 'name' || arg === 'names') return 'name';
  if (arg === 'unit') return command === 'detach' ? 'attached-unit' : 'unit';
  if (arg === 'command') return 'command';
  if (arg === 'shell') return ['bash', 'zsh', 'fish'];
  return 'none';
}

// Extra help text per command that is not an example (commander keeps addHelpText opaque).
export const HELP_AFTER: Record<string, string> = {
  check: 'Exit codes: 0 all checks passed; 4: check found a leak or something broken; 3 NAME is not up; 2 bad input; 1 a system tool failed.',
  doctor: 'Exit codes: 0 nsroute can work on this machine (warnings aside); 4 something it needs is missing or clashes; 1 a system tool failed.',
};

function optionSpec(o: Command['options'][number]): OptionSpec {
  const value = /[<[]([^>\]]+)[>\]]/.exec(o.flags)?.[1];
  return {
    flags: o.flags,
    long: o.long ?? o.flags,
    ...(o.short ? { short: o.short } : {}),
    ...(value ? { value: value.replace(/\.\.\.$/, '') } : {}),
    repeatable: o.variadic || typeof o.parseArg === 'function',
    description: o.description,
    values: value ? (OPTION_VALUES[o.long ?? ''] ?? 'none') : 'none',
  };
}

function visible(o: { hidden?: boolean }): boolean {
  return !o.hidden;
}

export function describeProgram(program: Command): ProgramSpec {
  const commands = program.commands.filter((c) => !(c as unknown as { _hidden?: boolean })._hidden);
  return {
    name: program.name(),
    version: program.version() ?? '',
    description: program.description(),
    options: program.options.filter(visible).map(optionSpec).concat(helpOption()),
    commands: commands.map((c) => ({
      name: c.name(),
      description: c.description(),
      args: c.registeredArguments.map((a) => ({
        name: a.name(),
        required: a.required,
        variadic: a.variadic,
        description: a.description,
        values: argValues(c.name(), a.name()),
      })),
      options: c.options.filter(visible).map(optionSpec).concat(helpOption()),
      examples: COMMAND_EXAMPLES[c.name()] ?? [],
      ...(HELP_AFTER[c.name()] ? { helpAfter: HELP_AFTER[c.name()] } : {}),
    })),
    examples: PROGRAM_EXAMPLES,
  };
}

// commander adds -h/--help to every command itself, outside `options`.
function helpOption(): OptionSpec {
  return { flags: '-h, --help', long: '--help', short: '-h', repeatable: false, description: 'display help for command', values: 'none' };
}
