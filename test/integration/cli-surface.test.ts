// What a user meets before nsroute does anything: shell completion, the man page, --help and
// the docs. They are generated from, or checked against, the same command definitions, so an
// option added to src/cli.ts must show up in all of them. Needs the build (npm test builds
// first); no root and no test world.
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdtempSync, mkdirSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { NSROUTE_JS, REPO_ROOT } from '../world/world.js';

const DIST = join(REPO_ROOT, 'dist');
// The installed package's files when testing an installed build (NSROUTE_TEST_BIN=/usr/bin/nsroute).
const COMPLETION_DIR = process.env.NSROUTE_TEST_COMPLETION_DIR ?? join(DIST, 'completion');
const MAN_PAGE = process.env.NSROUTE_TEST_MAN_PAGE ?? join(DIST, 'man', 'nsroute.1');

const tmp = mkdtempSync(join(tmpdir(), 'nsroute-surface-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

function nsroute(args: string[], env: Record<string, string> = {}): string {
  return execFileSync(process.execPath, [NSROUTE_JS, ...args], { encoding: 'utf8', env: { ...process.env, ...env } });
}

interface Spec {
  commands: { name: string; options: { long: string; short?: string }[] }[];
}
const spec = JSON.parse(nsroute(['__spec'])) as Spec;
const commandNames = spec.commands.map((c) => c.name);

// Completes `words` (the last one is the word under the cursor) with the generated bash
// script sourced in a real bash, `nsroute` being the build under test.
function bashComplete(words: string[], env: Record<string, string>): string[] {
  const script = `
nsroute() { ${JSON.stringify(process.execPath)} ${JSON.stringify(NSROUTE_JS)} "$@"; }
source ${JSON.stringify(join(COMPLETION_DIR, 'nsroute'))}
COMP_WORDS=(${words.map((w) => `'${w}'`).join(' ')})
COMP_CWORD=${words.length - 1}
_nsroute
printf '%s\\n' "\${COMPREPLY[@]}"
`;
  const r = spawnSync('bash', ['--norc', '--noprofile', '-c', script], { encoding: 'utf8', env: { ...process.env, ...env } });
  expect(r.stderr).toBe('');
  expect(r.status).toBe(0);
  return r.stdout.split('\n').filter(Boolean);
}

describe('bash completion', () => {
  const config = join(tmp, 'config');
  const env = { NSROUTE_CONFIG_DIR: config, NSROUTE_RUN_DIR: join(tmp, 'run') };
  mkdirSync(config, { recursive: true });
  for (const p of ['slow', 'novpn']) writeFileSync(join(config, `${p}.toml`), '');
  // A namespace that is up but has no profile (started with flags) is a NAME too.
  mkdirSync(join(tmp, 'run', 'ns', 'adhoc'), { recursive: true });

  it('completes commands', () => {
    expect(bashComplete(['nsroute', 'ex'], env)).toEqual(['exec']);
    expect(bashComplete(['nsroute', ''], env).sort()).toEqual([...commandNames].sort());
  });

  it('completes NAMEs from the profiles and the running namespaces', () => {
    expect(bashComplete(['nsroute', 'exec', ''], env)).toEqual(['adhoc', 'novpn', 'slow']);
    expect(bashComplete(['nsroute', 'exec', 'sl'], env)).toEqual(['slow']);
    expect(bashComplete(['nsroute', 'down', '--force', ''], env)).toEqual(['adhoc', 'novpn', 'slow']);
  });

  it('completes options and their values', () => {
    expect(bashComplete(['nsroute', 'exec', 'slow', '--mo'], env)).toEqual(['--mode']);
    expect(bashComplete(['nsroute', 'exec', 'slow', '--mode', ''], env)).toEqual(['nat', 'bridge', 'macvlan', 'cgroup', 'replies']);
    expect(bashComplete(['nsroute', 'up', 'slow', '--ipv6='], env)).toEqual(['off', 'nat']);
    expect(bashComplete(['nsroute', 'up', '--dev', 'l'], env)).toContain('lo');
    // The value of --via is not a NAME: after it comes the NAME again.
    expect(bashComplete(['nsroute', 'exec', '--via', '10.0.0.1', ''], env)).toEqual(['adhoc', 'novpn', 'slow']);
  });

  it('completes the command after --', () => {
    expect(bashComplete(['nsroute', 'exec', 'slow', '--', 'bas'], env)).toContain('bash');
  });

  it('__complete is fast to call: it reads directories only, and unknown kinds give nothing', () => {
    expect(nsroute(['__complete', 'name'], env).split('\n').filter(Boolean)).toEqual(['adhoc', 'novpn', 'slow']);
    expect(nsroute(['__complete', 'nonsense'], env)).toBe('');
  });
});

describe('zsh and fish completion', () => {
  const has = (sh: string) => spawnSync('sh', ['-c', `command -v ${sh}`]).status === 0;
  // A real interactive zsh on a pty (zsh/zpty): each line is typed with a TAB, then ^T
  // dumps the edited line to a file; a compadd wrapper records what was offered. The
  // `touch` typed after it says when zsh is done with the line.
  it.skipIf(!has('zsh'))('zsh script completes commands, NAMEs, options, values and the command after --', () => {
    const dir = join(tmp, 'zsh');
    mkdirSync(join(dir, 'f'), { recursive: true });
    mkdirSync(join(dir, 'c'), { recursive: true });
    for (const p of ['slow', 'fast']) writeFileSync(join(dir, 'c', `${p}.toml`), '');
    writeFileSync(join(dir, 'f', '_nsroute'), readFileSync(join(COMPLETION_DIR, '_nsroute')));
    writeFileSync(
      join(dir, 'init.zsh'),
      `PS1=''
fpath=(${dir}/f $fpath)
autoload -U compinit; compinit -u -d ${dir}/zcd
export NSROUTE_CONFIG_DIR=${dir}/c
nsroute() { ${JSON.stringify(process.execPath)} ${JSON.stringify(NSROUTE_JS)} "$@" }
compadd() {
  if [[ \${@[1,(i)(-|--)]} == *-(O|A|D)\\ * ]]; then builtin compadd "$@"; return; fi
  local -a __hits
  builtin compadd -A __hits "$@"
  (( $#__hits )) && print -rl -- $__hits >> ${dir}/out
  builtin compadd "$@"
}
dump() { print -r -- "$BUFFER" > ${dir}/buf; BUFFER='' }
zle -N dump; bindkey '^T' dump
`,
    );
    const lines = ['nsroute ex', 'nsroute exec ', 'nsroute exec sl', 'nsroute exec slow --mo', 'nsroute up slow --mode ', 'nsroute exec slow -- ech'];
    writeFileSync(
      join(dir, 't.zsh'),
      `zmodload zsh/zpty
zpty z zsh -f -i
zpty -w z "source ${dir}/init.zsh"
i=0
for line in ${lines.map((l) => `'${l}'`).join(' ')}; do
  i=$((i+1))
  : > ${dir}/out
  zpty -w -n z "$line"$'\t\x14'"touch ${dir}/done$i"$'\n'
  while [[ ! -e ${dir}/done$i ]]; do sleep 0.05; done
  print -r -- "$(<${dir}/buf)|$(sort -u ${dir}/out | tr '\n' ' ')"
done
zpty -d z
`,
    );
    const r = spawnSync('zsh', ['-f', join(dir, 't.zsh')], { encoding: 'utf8', timeout: 60_000 });
    expect(r.stderr).toBe('');
    const got = r.stdout.split('\n').filter(Boolean).map((l) => l.split('|').map((x) => x.trim()));
    expect(got.slice(0, 5)).toEqual([
      ['nsroute exec', 'exec'],
      ['nsroute exec', 'fast slow'],
      ['nsroute exec slow', 'slow'],
      ['nsroute exec slow --mode', '--mode'],
      ['nsroute up slow --mode', 'bridge cgroup macvlan nat replies'],
    ]);
    // After --, the command's name from the machine's commands (zsh's echotc/echoti too).
    expect(got[5]?.[0]).toMatch(/^nsroute exec slow -- ech/);
    expect(got[5]?.[1]?.split(' ')).toContain('echo');
  });
  it.skipIf(!has('fish'))('fish script completes commands, NAMEs and option values', () => {
    const config = join(tmp, 'fishconfig');
    mkdirSync(config, { recursive: true });
    writeFileSync(join(config, 'slow.toml'), '');
    const bin = join(tmp, 'bin');
    mkdirSync(bin, { recursive: true });
    writeFileSync(join(bin, 'nsroute'), `#!/bin/sh\nexec ${JSON.stringify(process.execPath)} ${JSON.stringify(NSROUTE_JS)} "$@"\n`, { mode: 0o755 });
    const r = spawnSync(
      'fish',
      ['--no-config', '-c', `source ${join(COMPLETION_DIR, 'nsroute.fish')}; complete -C 'nsroute ex'; complete -C 'nsroute exec '; complete -C 'nsroute exec slow --mo'; complete -C 'nsroute up slow --ipv6 '`],
      { encoding: 'utf8', env: { ...process.env, NSROUTE_CONFIG_DIR: config, PATH: `${bin}:${process.env.PATH}` } },
    );
    expect(r.stderr).toBe('');
    const firsts = r.stdout.split('\n').filter(Boolean).map((l) => l.split('\t')[0]);
    expect(firsts).toEqual(['exec', 'slow', '--mode', 'nat', 'off']);
  });
});

// --help's options of a command, as `--long` / `-s` names.
function helpOptions(args: string[]): string[] {
  const text = nsroute([...args, '--help']);
  const section = text.split(/\nOptions:\n/)[1]?.split(/\n\n/)[0] ?? '';
  return section
    .split('\n')
    .flatMap((l) => /^\s{2}((?:-\w, )?--[\w-]+)/.exec(l)?.[1]?.split(', ') ?? [])
    .sort();
}

// The man page's options of a command: the .TP items of its .SS section.
function manOptions(page: string, command: string): string[] {
  const start = page.indexOf(`.SS "nsroute ${command}`);
  if (start < 0) return [];
  const end = page.indexOf('\n.SS ', start + 1);
  const section = page.slice(start, end < 0 ? page.indexOf('\n.SH ', start) : end);
  return [...section.matchAll(/^\.TP\n(.*)$/gm)]
    .flatMap((m) => [...(m[1] ?? '').matchAll(/\\fB((?:\\-)+[\w\\-]+)\\fR/g)].map((x) => (x[1] ?? '').replace(/\\-/g, '-')))
    .sort();
}

// docs/commands.md: each `## nsroute CMD` section lists its options in a table; the sections
// of exec, shell and up say "route options", which are the table under `## Route options`.
function docsOptions(md: string, command: string): string[] {
  const sections = md.split(/\n(?=## )/);
  const table = (s: string) => [...s.matchAll(/^\| `((?:-\w, )?--[\w-]+)/gm)].flatMap((m) => (m[1] ?? '').split(', '));
  const own = sections.find((s) => new RegExp(`^## \`nsroute ${command}\\b`).test(s));
  if (!own) return [];
  const route = /route options/i.test(own) ? table(sections.find((s) => s.startsWith('## Route options')) ?? '') : [];
  const listed = [...table(own), ...route];
  return [...(listed.includes('--help') ? [] : ['-h', '--help']), ...listed].sort();
}

describe('man page', () => {
  const page = readFileSync(MAN_PAGE, 'utf8');

  it('renders without a single groff warning', () => {
    const r = spawnSync('groff', ['-man', '-ww', '-z', MAN_PAGE], { encoding: 'utf8' });
    expect(r.stderr).toBe('');
    expect(r.status).toBe(0);
  });

  it.each(commandNames)('lists the same options for %s as --help and docs/commands.md', (command) => {
    const help = helpOptions([command]);
    expect(help.length).toBeGreaterThan(1);
    expect(manOptions(page, command)).toEqual(help);
    expect(docsOptions(readFileSync(join(REPO_ROOT, 'docs', 'commands.md'), 'utf8'), command)).toEqual(help);
  });

  it('documents every option and environment variable that the README and docs/ mention', () => {
    const docs = ['README.md', ...readdirSync(join(REPO_ROOT, 'docs')).filter((f) => f.endsWith('.md')).map((f) => join('docs', f))];
    const text = docs.map((f) => readFileSync(join(REPO_ROOT, f), 'utf8')).join('\n');
    const plain = page.replace(/\\-/g, '-').replace(/\\f[BIR]/g, '');
    const options = new Set([...text.matchAll(/(?<![\w-])--[a-z][a-z0-9-]+/g)].map((m) => m[0]));
    // Options of other tools and of the repository's scripts that the docs quote.
    for (const other of ['--net', '--reporter', '--outputFile', '--no-install-recommends', '--lintian', '--cap-add', '--capability', '--scale']) options.delete(other);
    const missing = [...options].filter((o) => !plain.includes(o));
    expect(missing).toEqual([]);
    const envs = new Set([...text.matchAll(/\bNSROUTE_[A-Z_]+\b/g)].map((m) => m[0]).filter((e) => !e.startsWith('NSROUTE_TEST_')));
    expect([...envs].filter((e) => !plain.includes(e))).toEqual([]);
  });
});

describe('exit codes', () => {
  it('the man page gives the exit status of every command, with every code docs/commands.md lists', () => {
    const plain = readFileSync(MAN_PAGE, 'utf8').replace(/\\-/g, '-').replace(/\\f[BIR]/g, '');
    const status = plain.slice(plain.indexOf('.SH EXIT STATUS'), plain.indexOf('.SH ENVIRONMENT'));
    const md = readFileSync(join(REPO_ROOT, 'docs', 'commands.md'), 'utf8');
    const table = md.slice(md.indexOf('## Exit codes'), md.indexOf('## Environment'));
    for (const c of commandNames) {
      expect(status, `EXIT STATUS names ${c}`).toMatch(new RegExp(`\\b${c}\\b`));
      expect(table, `docs/commands.md's exit codes name ${c}`).toMatch(new RegExp(`\\b${c}\\b`));
    }
    const codes = (t: string) => new Set([...t.matchAll(/\b(\d{1,3})\b/g)].map((m) => m[1]).filter((n) => ['0', '1', '2', '3', '4', '125', '126', '127', '128'].includes(n!)));
    expect([...codes(table)].filter((c) => !codes(status).has(c))).toEqual([]);
  });
});

describe('help', () => {
  it.each(['', ...commandNames])('nsroute %s --help ends with examples', (command) => {
    const text = nsroute([...(command ? [command] : []), '--help']);
    const examples = text.split('\nExamples:\n')[1];
    expect(examples, text).toBeDefined();
    expect((examples ?? '').split('\n').filter((l) => l.startsWith('  ')).length).toBeGreaterThanOrEqual(2);
  });
});
