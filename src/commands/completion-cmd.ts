// The verbs behind `nsroute completion SHELL` and the hidden `nsroute __spec` (the command line
// as JSON, which scripts/man.mjs turns into the man page at build time). The hidden `nsroute
// __complete KIND`, asked by the completion scripts at TAB time, is in complete-words.ts.
import type { Command } from 'commander';
import { renderCompletion } from './completion.js';
import { describeProgram } from './spec.js';

export function runCompletion(program: Command, shell: string): number {
  process.stdout.write(renderCompletion(shell, describeProgram(program)));
  return 0;
}

export function runSpec(program: Command): number {
  process.stdout.write(JSON.stringify(describeProgram(program), null, 2) + '\n');
  return 0;
}
