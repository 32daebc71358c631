// Generates the man page dist/man/nsroute.1 at build time from one source of truth: the
// command definitions (commands, arguments, options, examples, read from the built CLI via
// its hidden `nsroute __spec`) plus the written sections of docs/man/nsroute.1.in (profile,
// exit codes, environment, files...). The @PLACEHOLDERS@ there are filled in here.
import { execFileSync } from 'node:child_process';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';

const bin = process.argv[2] ?? 'dist/nsroute.js';
const out = process.argv[3] ?? 'dist/man/nsroute.1';
const spec = JSON.parse(execFileSync(process.execPath, [bin, '__spec'], { encoding: 'utf8' }));

// Text to roff: backslashes and hyphens escaped (a bare "-" may render as a hyphen, not a
// minus, and breaks copy-paste of options), and a line must not start with a control char.
const esc = (s) => s.replace(/\\/g, '\\e').replace(/-/g, '\\-');
const line = (s) => (/^[.']/.test(s) ? `\\&${s}` : s);
const para = (s) => line(esc(s));

function argText(a) {
  const n = `\\fI${esc(a.name)}\\fR${a.variadic ? '\\ ...' : ''}`;
  return a.required ? n : `[${n}]`;
}

function optionItem(o) {
  const names = [o.short, o.long].filter(Boolean).map((n) => `\\fB${esc(n)}\\fR`).join(', ');
  const value = o.value ? ` \\fI${esc(o.value)}\\fR` : '';
  return `.TP\n${line(names + value)}\n${para(o.description)}${o.repeatable ? ' Repeatable.' : ''}`;
}

const synopsis = spec.commands
  .map((c) => `.SY nsroute\n.B ${c.name}\n${c.options.length > 1 ? '[\\fIoptions\\fR]\n' : ''}${c.args.map(argText).join('\n')}${c.args.length ? '\n' : ''}.YS`)
  .join('\n');

const commands = spec.commands
  .map((c) => {
    const head = `.SS "nsroute ${c.name}${c.args.map((a) => ' ' + (a.required ? a.name.toUpperCase() : `[${a.name.toUpperCase()}]`) + (a.variadic ? '...' : '')).join('')}"`;
    const args = c.args.map((a) => `.TP\n\\fI${esc(a.name)}\\fR\n${para(a.description || '')}`).join('\n');
    const opts = c.options.map(optionItem).join('\n');
    const after = c.helpAfter ? `\n.PP\n${para(c.helpAfter)}` : '';
    const ex = c.examples.length ? `\n.PP\nExamples:\n.RS\n.nf\n${c.examples.map(para).join('\n')}\n.fi\n.RE` : '';
    return `${head}\n${para(c.description.charAt(0).toUpperCase() + c.description.slice(1) + '.')}\n${args}\n${opts}${after}${ex}`;
  })
  .join('\n');

const globalOptions = spec.options.map(optionItem).join('\n');
const examples = spec.examples.map((e) => `.PP\n.EX\n${para(e)}\n.EE`).join('\n');

const template = readFileSync('docs/man/nsroute.1.in', 'utf8');
const page = template
  .replace(/@VERSION@/g, spec.version)
  .replace('@SYNOPSIS@', synopsis)
  .replace('@GLOBAL_OPTIONS@', globalOptions)
  .replace('@COMMANDS@', commands)
  .replace('@EXAMPLES@', examples);
if (/@[A-Z_]+@/.test(page)) throw new Error(`man.mjs: unfilled placeholder ${/@[A-Z_]+@/.exec(page)[0]}`);
mkdirSync(out.replace(/\/[^/]*$/, ''), { recursive: true });
writeFileSync(out, page);
