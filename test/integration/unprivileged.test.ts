// Users who are not root (issue 15, docs/unprivileged.md): `nsroute allow` lets a user or a
// group use one NAME through sudo and the entry point, and nothing more. Real sudo, real
// throwaway users and a group (the world's prefix; removed after, also on failure).
//
// This file changes the machine outside the test world in exactly three ways, all removed in
// afterAll and on exit: the users and group `${prefix}a|b|c|g` (useradd/groupadd), and
// sudoers drop-ins `/etc/sudoers.d/${prefix}nsroute` and `${prefix}link` (sudo reads only
// /etc/sudoers and what it includes: there is no per-process sudoers). They grant the
// throwaway users only the entry point in the world's dir, which runs the world's nsroute.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { chownSync, existsSync, lstatSync, mkdirSync, readFileSync, readdirSync, rmdirSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createWorld, waitFor, type RunResult, type Snapshot, type World } from '../world/world.js';
import { PATH4, expectOk, show } from '../world/helpers.js';

let w: World;
let clean: Snapshot;
let entry: string;
let sudoers: string;
let linkDropIn: string;
let userDir: string;
let slow: string;
let slow2: string;
let other: string;
const users: string[] = [];
let group = '';
const held: ChildProcess[] = [];
const ids: Record<string, number> = {};

function sh(argv: string[]): string {
  const r = spawnSync(argv[0]!, argv.slice(1), { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`${argv.join(' ')}: ${r.stderr}`);
  return r.stdout;
}

function removeAccounts(): void {
  for (const u of users) spawnSync('userdel', [u]);
  if (group) spawnSync('groupdel', [group]);
  for (const f of [sudoers, linkDropIn]) if (f) rmSync(f, { force: true });
}

// NSROUTE_CGROUP_PARENT: `allow` bakes it into the entry point, so a user's cgroup-mode NAME
// lives under the world's own cgroup parent too (removed in afterAll).
const rootEnv = () => ({ NSROUTE_ENTRY: entry, NSROUTE_SUDOERS: sudoers, NSROUTE_CGROUP_PARENT: cgParent() });
const cgParent = () => `${w.prefix}cg`;
function cgMount(): string {
  for (const line of readFileSync('/proc/self/mountinfo', 'utf8').split('\n')) {
    const dash = line.indexOf(' - ');
    if (dash > 0 && line.slice(dash + 3).startsWith('cgroup2 ')) return line.split(' ')[4]!;
  }
  throw new Error('no cgroup2 mount');
}
function removeCgroups(): void {
  const root = join(cgMount(), cgParent());
  if (!existsSync(root)) return;
  for (const d of readdirSync(root, { withFileTypes: true })) if (d.isDirectory()) rmdirSync(join(root, d.name));
  rmdirSync(root);
}

// nsroute as USER in the fake host, stdin closed; the world's NSROUTE_* dirs are in its env
// (they must not matter).
function asUser(user: string, args: readonly string[], env: Record<string, string | undefined> = {}, input?: string): Promise<RunResult> {
  return w.inHost(['/usr/bin/setpriv', `--reuid=${user}`, `--regid=${user}`, '--init-groups', '--', process.execPath, w.bin, ...args], {
    env: { NSROUTE_ENTRY: entry, HOME: '/', ...env },
    ...(input !== undefined ? { input } : {}),
  });
}

// sudo itself as USER, to talk to the root side without nsroute's own client in between.
function sudoAsUser(user: string, args: readonly string[]): Promise<RunResult> {
  return w.inHost(['/usr/bin/setpriv', `--reuid=${user}`, `--regid=${user}`, '--init-groups', '--', 'sudo', '-n', ...args], { env: { HOME: '/' } });
}

function audit(): string {
  try {
    return readFileSync(join(w.libDir, 'audit.log'), 'utf8');
  } catch {
    return '';
  }
}

function oneLine(r: RunResult, code: number, re: RegExp): void {
  expect(r.exitCode, show(r)).toBe(code);
  const lines = r.stderr.trimEnd().split('\n');
  expect(lines, show(r)).toHaveLength(1);
  expect(lines[0], show(r)).toMatch(re);
}

async function expectHostClean(): Promise<void> {
  expect(await w.snapshot()).toEqual(clean);
  for (const n of [slow, slow2, other]) expect(w.netnsExists(n), n).toBe(false);
}

beforeAll(async () => {
  // The throwaway users run the bundle, and `allow` points sudo only at a bundle in root's
  // directories: a copy in the world's dir, wherever the clone is (/root is 0700).
  w = await createWorld({ privateBin: true });
  process.on('exit', removeAccounts);
  const p = w.prefix;
  group = `${p}g`;
  sh(['groupadd', group]);
  for (const [u, extra] of [[`${p}a`, []], [`${p}b`, ['-G', group]], [`${p}c`, []]] as const) {
    users.push(u);
    sh(['useradd', '-M', '-d', '/nonexistent', '-s', '/bin/sh', '-U', ...extra, u]);
    ids[u] = Number(sh(['id', '-u', u]).trim());
  }
  entry = join(w.dir, 'entry', 'nsroute-user');
  sudoers = `/etc/sudoers.d/${p}nsroute`;
  linkDropIn = `/etc/sudoers.d/${p}link`;
  userDir = join(w.dir, 'user');
  mkdirSync(userDir, { mode: 0o755 });
  chownSync(userDir, ids[`${p}a`]!, ids[`${p}a`]!);
  slow = w.name('slow');
  slow2 = w.name('slow2');
  other = w.name('other');
  w.writeProfile(slow, 'via = "10.99.2.1"\n# the slow uplink\n');
  w.writeProfile(slow2, 'via = "10.99.2.1"\n');
  w.writeProfile(other, 'via = "10.99.2.1"\n');
  const r = await w.nsroute(['allow', slow, `${p}a`, `%${group}`], { env: rootEnv() });
  expect(r.exitCode, show(r)).toBe(0);
  const r2 = await w.nsroute(['allow', slow2, `${p}a`], { env: rootEnv() });
  expect(r2.exitCode, show(r2)).toBe(0);
  clean = await w.snapshot();
});

afterAll(async () => {
  // Nothing here may stop the clean-up below (a throw would leave the throwaway users).
  for (const c of held) if (c.exitCode === null && c.signalCode === null && c.pid) c.kill('SIGKILL');
  await w?.destroy();
  if (w) removeCgroups();
  removeAccounts();
  const left = sh(['getent', 'passwd']).split('\n').filter((l) => w && l.startsWith(w.prefix));
  expect(left).toEqual([]);
});

describe('what allow installs', () => {
  it('writes the profile key, a checked 0440 sudoers drop-in and a root-owned entry point', () => {
    expect(readFileSync(join(w.configDir, `${slow}.toml`), 'utf8')).toBe(`via = "10.99.2.1"\n# the slow uplink\nallow = ["${w.prefix}a", "%${group}"]\n`);
    const st = lstatSync(sudoers);
    expect(st.isFile() && st.uid === 0 && (st.mode & 0o777) === 0o440).toBe(true);
    const text = readFileSync(sudoers, 'utf8');
    expect(text).toContain(`%${group}, ${w.prefix}a ALL = (root) NOPASSWD: ${entry}`);
    expect(text).toContain(`Defaults!${entry} env_reset, !env_keep, !setenv`);
    expect(spawnSync('visudo', ['-c', '-q', '-f', sudoers]).status).toBe(0);
    const e = lstatSync(entry);
    expect(e.uid === 0 && (e.mode & 0o777) === 0o755).toBe(true);
  });

  it('refuses to write through a symlink, and leaves a file that is not its own alone', async () => {
    const target = join(w.dir, 'target');
    writeFileSync(target, 'keep\n');
    symlinkSync(target, linkDropIn);
    const r = await w.nsroute(['allow', slow, `${w.prefix}a`], { env: { ...rootEnv(), NSROUTE_SUDOERS: linkDropIn } });
    oneLine(r, 2, /symbolic link/);
    expect(readFileSync(target, 'utf8')).toBe('keep\n');
    rmSync(linkDropIn);
    writeFileSync(linkDropIn, '# somebody else\n', { mode: 0o440 });
    const r2 = await w.nsroute(['allow', slow, `${w.prefix}a`], { env: { ...rootEnv(), NSROUTE_SUDOERS: linkDropIn } });
    oneLine(r2, 2, /not nsroute's/);
    expect(readFileSync(linkDropIn, 'utf8')).toBe('# somebody else\n');
    rmSync(linkDropIn);
  });

  it('refuses entries that are not existing users or groups, before changing anything', async () => {
    const before = readFileSync(sudoers, 'utf8');
    for (const bad of ['alice, ALL', 'ALL', `${w.prefix}nosuchuser`, `%${w.prefix}nosuchgroup`]) {
      const r = await w.nsroute(['allow', slow, bad], { env: rootEnv() });
      oneLine(r, 2, /is not a user name|does not exist/);
    }
    expect(readFileSync(sudoers, 'utf8')).toBe(before);
    expect(readFileSync(join(w.configDir, `${slow}.toml`), 'utf8')).not.toMatch(/ALL|nosuch/);
  });
});

describe('an allowed user', () => {
  it("runs exec via the profile's gateway, as themselves, without a prompt (stdin closed)", async () => {
    const u = `${w.prefix}a`;
    const r = await asUser(u, ['exec', slow, '--', 'sh', '-c', 'id -u; exec "$@"', 'sh', ...PATH4]);
    expect(r.exitCode, show(r)).toBe(0);
    const [uid, path] = r.stdout.trim().split('\n');
    expect(uid).toBe(String(ids[u]));
    expect(path).toMatch(/^slow /);
    expect(r.stderr).toBe('');
    expect(audit()).toMatch(new RegExp(`user=${u} uid=${ids[u]} command=exec name=${slow} allowed: by user ${u}`));
    await expectHostClean();
  });

  it('is allowed through a group, and list shows only the NAMEs allowed to them', async () => {
    const u = `${w.prefix}b`;
    const r = await asUser(u, ['exec', slow, '--', 'id', '-u']);
    expect(r.exitCode, show(r)).toBe(0);
    expect(r.stdout.trim()).toBe(String(ids[u]));
    expect(audit()).toContain(`user=${u} uid=${ids[u]} command=exec name=${slow} allowed: by group %${group}`);
    const st = await asUser(u, ['status', slow, '--json']);
    expect(st.exitCode, show(st)).toBe(3);
    const l = await asUser(u, ['list', '--json']);
    expect(l.exitCode, show(l)).toBe(0);
    expect(JSON.parse(l.stdout)).toEqual([]);
    await expectHostClean();
  });

  it("gets the passwd shell, not $SHELL, and the world's NSROUTE_* / PATH / SHELL / test hooks do nothing", async () => {
    const u = `${w.prefix}a`;
    // A PATH of the user's with tools that would mark being run as root.
    for (const tool of ['ip', 'sh', 'setpriv', 'mount', 'nft', 'logger', 'flock', 'sudo', 'env', 'id']) {
      writeFileSync(join(userDir, tool), `#!/bin/sh\ntouch ${userDir}/ran-$(/usr/bin/id -u)\nexit 0\n`, { mode: 0o755 });
    }
    // A config dir of the user's, with a profile that would route the other way.
    const evilConfig = join(userDir, 'config');
    mkdirSync(evilConfig, { recursive: true });
    writeFileSync(join(evilConfig, `${slow}.toml`), `via = "10.99.1.1"\nallow = ["${u}"]\n`);
    writeFileSync(join(evilConfig, `${other}.toml`), `via = "10.99.1.1"\nallow = ["${u}"]\n`);
    const env = {
      SHELL: '/bin/evil',
      PATH: `${userDir}:/usr/bin:/bin`,
      NSROUTE_CONFIG_DIR: evilConfig,
      NSROUTE_RUN_DIR: join(userDir, 'run'),
      NSROUTE_LIB_DIR: join(userDir, 'lib'),
      NSROUTE_TEST_CRASH: 'apply:0',
      NSROUTE_TEST_PAUSE: `apply:0:${userDir}/pause`,
    };
    const r = await asUser(u, ['shell', slow], env, `echo "shell=$0"; /usr/bin/id -u; ${PATH4.map((a) => `'${a}'`).join(' ')}\n`);
    expect(r.exitCode, show(r)).toBe(0);
    const lines = r.stdout.trim().split('\n');
    expect(lines.slice(0, 2), show(r)).toEqual(['shell=/bin/sh', String(ids[u])]);
    expect(lines[2], show(r)).toMatch(/^slow /);
    expect(existsSync(join(userDir, 'ran-0'))).toBe(false);
    expect(existsSync(`${userDir}/pause.reached`)).toBe(false);
    const other1 = await asUser(u, ['exec', other, '--', 'id', '-u'], env);
    oneLine(other1, 125, new RegExp(`may not use ${other}`));
    expect(existsSync(join(userDir, 'ran-0'))).toBe(false);
    expect(existsSync(join(userDir, 'run'))).toBe(false);
    await expectHostClean();
  });
});

describe('what a user must never get', () => {
  const refusals: [string, string[], RegExp][] = [
    ['--as-root', ['exec', '@slow', '--as-root', '--', 'id', '-u'], /--as-root is for root only/],
    ['--user root', ['exec', '@slow', '--user', 'root', '--', 'id', '-u'], /--user is for root only/],
    ['--via', ['exec', '@slow', '--via', '10.99.1.1', '--', 'id', '-u'], /--via is for root only/],
    ['--dns', ['exec', '@slow', '--dns', '10.99.1.1', '--', 'id', '-u'], /--dns is for root only/],
    ['--subnet', ['shell', '@slow', '--subnet', '10.231.9.0/30'], /--subnet is for root only/],
    ['--mode', ['exec', '@slow', '--mode', 'bridge', '--', 'id'], /--mode is for root only/],
    ['a NAME not allowed', ['exec', '@other', '--', 'id', '-u'], /may not use .*other.*nsroute allow/],
    ['a NAME with no profile', ['exec', '@nope', '--', 'id', '-u'], /may not use/],
    ['status of a NAME not allowed', ['status', '@other'], /may not use/],
  ];
  for (const [what, args0, re] of refusals) {
    it(`refuses ${what} in one line, and nothing changes`, async () => {
      const args = args0.map((a) => (a.startsWith('@') ? w.name(a.slice(1)) : a));
      const before = audit().split('\n').length;
      const r = await asUser(`${w.prefix}a`, args);
      oneLine(r, args[0] === 'status' ? 2 : 125, re);
      expect(audit().split('\n').length).toBe(before + 1);
      expect(audit()).toMatch(/refused: [^\n]*\n$/);
      await expectHostClean();
    });
  }

  it('refuses root-only commands on both sides: the client says so, the root side refuses them too', async () => {
    for (const verb of [['up', slow], ['down', slow], ['gc'], ['allow', slow, `${w.prefix}c`]]) {
      const r = await asUser(`${w.prefix}a`, verb);
      oneLine(r, 2, new RegExp(`nsroute ${verb[0]} needs root`));
      const s = await sudoAsUser(`${w.prefix}a`, [entry, ...verb]);
      oneLine(s, 2, new RegExp(`nsroute ${verb[0]} needs root`));
      expect(audit()).toContain(`command=${verb[0]} name=- refused`);
    }
    // Environment on sudo's command line, and --from-sudo without sudo.
    const e = await sudoAsUser(`${w.prefix}a`, ['NSROUTE_TEST_CRASH=apply:0', entry, 'exec', slow, '--', 'id']);
    expect(e.exitCode, show(e)).not.toBe(0);
    const f = await asUser(`${w.prefix}a`, ['--from-sudo', 'exec', slow, '--', 'id']);
    oneLine(f, 125, /is how sudo enters nsroute/);
    expect(readFileSync(join(w.configDir, `${slow}.toml`), 'utf8')).not.toContain(`${w.prefix}c`);
    await expectHostClean();
  });

  it('refuses a profile the user can write: only root may decide where NAME routes', async () => {
    const file = join(w.configDir, `${slow2}.toml`);
    chownSync(file, ids[`${w.prefix}a`]!, 0);
    try {
      const r = await asUser(`${w.prefix}a`, ['exec', slow2, '--', 'id', '-u']);
      oneLine(r, 125, /owned by uid/);
      expect(audit()).toMatch(new RegExp(`command=exec name=${slow2} refused: [^\\n]*owned by uid`));
    } finally {
      chownSync(file, 0, 0);
    }
    await expectHostClean();
  });

  it('tells a user no profile allows one line, for exec and for list', async () => {
    const c = `${w.prefix}c`;
    const r = await asUser(c, ['exec', slow, '--', 'id', '-u']);
    oneLine(r, 125, new RegExp(`you \\(${c}, uid ${ids[c]}\\) may not use nsroute without root: .*nsroute allow ${slow} ${c}`));
    const l = await asUser(c, ['list']);
    oneLine(l, 2, /may not use nsroute without root/);
    await expectHostClean();
  });

  it('shares an allowed NAME between its users, and holds each user to the quota', async () => {
    const a = `${w.prefix}a`;
    writeFileSync(join(w.configDir, 'nsroute.conf'), 'user_namespaces = 1\n');
    try {
      const ready = join(userDir, 'ready');
      const stop = join(userDir, 'stop');
      const child = spawn('nsenter', [`--net=/run/netns/${w.host}`, '/usr/bin/setpriv', `--reuid=${a}`, `--regid=${a}`, '--init-groups', '--', process.execPath, w.bin, 'exec', slow, '--', 'sh', '-c', `touch ${ready}; while [ ! -e ${stop} ]; do sleep 0.05; done`], {
        env: { PATH: process.env.PATH, NSROUTE_ENTRY: entry, HOME: '/' },
        stdio: 'ignore',
      });
      held.push(child);
      const done = new Promise((res) => child.on('close', res));
      await waitFor(() => existsSync(ready), 'the held exec');
      // The user may signal their sudo (its real uid is theirs), which relays SIGTSTP to
      // root's side: that must not stop it (it could be holding the host lock).
      const procs = sh(['ps', '-eo', 'pid=,ppid=,uid=,stat=,comm=']).trim().split('\n').map((l) => {
        const [pid, ppid, uid, stat, comm] = l.trim().split(/\s+/);
        return { pid: Number(pid), ppid: Number(ppid), uid: Number(uid), stat: stat!, comm: comm! };
      });
      const below = (pid: number): typeof procs => procs.filter((q) => q.ppid === pid).flatMap((q) => [q, ...below(q.pid)]);
      const sudoProc = below(child.pid!).find((q) => q.comm === 'sudo')!;
      const rootNode = below(sudoProc.pid).find((q) => q.uid === 0 && q.comm === 'node')!;
      expect(rootNode, JSON.stringify(procs)).toBeDefined();
      const tstp = await w.inHost(['/usr/bin/setpriv', `--reuid=${a}`, `--regid=${a}`, '--init-groups', '--', 'kill', '-TSTP', String(sudoProc.pid)]);
      expect(tstp.exitCode, show(tstp)).toBe(0);
      const direct = await w.inHost(['/usr/bin/setpriv', `--reuid=${a}`, `--regid=${a}`, '--init-groups', '--', 'kill', '-STOP', String(rootNode.pid)]);
      expect(direct.exitCode, show(direct)).not.toBe(0); // root's process: not the user's to stop
      // The same NAME again is no new namespace; another one is over the quota.
      const same = await asUser(a, ['exec', slow, '--', 'id', '-u']);
      expect(same.exitCode, show(same)).toBe(0);
      const over = await asUser(a, ['exec', slow2, '--', 'id', '-u']);
      oneLine(over, 125, /you already hold 1 namespace\(s\) .*user_namespaces = 1/);
      expect(w.netnsExists(slow2)).toBe(false);
      // Another allowed user joins the same NAME (documented: a NAME is shared by its users).
      const b = await asUser(`${w.prefix}b`, ['exec', slow, '--', 'id', '-u']);
      expect(b.exitCode, show(b)).toBe(0);
      expect(readFileSync(`/proc/${rootNode.pid}/stat`, 'utf8').split(') ')[1]![0]).not.toBe('T');
      spawnSync('kill', ['-CONT', String(sudoProc.pid)]);
      writeFileSync(stop, '');
      await done;
    } finally {
      rmSync(join(w.configDir, 'nsroute.conf'), { force: true });
    }
    await expectHostClean();
  });
});

describe('disallow', () => {
  it("move under sudo: the caller moves only their own processes; another user's or root's is refused in one line, nothing moved", async () => {
    const p = w.prefix;
    const cg = w.name('cg');
    w.writeProfile(cg, 'mode = "cgroup"\nvia = "10.99.2.1"\n');
    expectOk(await w.nsroute(['allow', cg, `${p}a`], { env: rootEnv() }));
    // Long sleeps of user a, of user c and of root (no network: only their cgroup matters).
    const sleepers: ChildProcess[] = [];
    const sleeper = (uid?: number) => {
      const argv = uid === undefined ? ['sleep', '600'] : ['/usr/bin/setpriv', `--reuid=${uid}`, `--regid=${uid}`, '--clear-groups', '--', 'sleep', '600'];
      const c = spawn(argv[0]!, argv.slice(1), { stdio: 'ignore' });
      held.push(c);
      sleepers.push(c);
      return c.pid!;
    };
    const mine = sleeper(ids[`${p}a`]);
    const theirs = sleeper(ids[`${p}c`]);
    const roots = sleeper();
    const cgroupOf = (pid: number) => readFileSync(`/proc/${pid}/cgroup`, 'utf8').split('\n').find((l) => l.startsWith('0::'))!;
    await waitFor(() => existsSync(`/proc/${mine}`) && readFileSync(`/proc/${mine}/status`, 'utf8').includes(`Uid:\t${ids[`${p}a`]}\t`), 'the sleeps');
    const before = [theirs, roots].map(cgroupOf);
    for (const pid of [theirs, roots]) {
      const r = await asUser(`${p}a`, ['move', cg, String(pid)]);
      oneLine(r, 2, new RegExp(`${pid} is not your process`));
    }
    expect([theirs, roots].map(cgroupOf)).toEqual(before);
    expect((await w.nsroute(['status', cg], { env: rootEnv() })).exitCode, 'refused before NAME came up').toBe(3);
    // Its own: moved in, and back out.
    const r = await asUser(`${p}a`, ['move', cg, String(mine), '--json']);
    expect(r.exitCode, show(r)).toBe(0);
    expect(cgroupOf(mine)).toBe(`0::/${cgParent()}/${cg}`);
    const out = await asUser(`${p}a`, ['move', '--out', String(mine)]);
    expect(out.exitCode, show(out)).toBe(0);
    expect(cgroupOf(mine)).not.toContain(cgParent());
    // Nor may it move root's out of a NAME.
    const r2 = await asUser(`${p}a`, ['move', '--out', String(roots)]);
    oneLine(r2, 2, new RegExp(`${roots} is not your process`));
    for (const c of sleepers) c.kill('SIGKILL');
    expectOk(await w.nsroute(['disallow', cg, `${p}a`], { env: rootEnv() }));
    await waitFor(async () => (await w.nsroute(['gc'], { env: rootEnv() })).exitCode === 0 && (await w.nsroute(['status', cg], { env: rootEnv() })).exitCode === 3, `${cg} removed`);
  });

  it('removes users; with no profile allowing anyone, the drop-in and the entry point go', async () => {
    const r = await w.nsroute(['disallow', slow, `${w.prefix}a`], { env: rootEnv() });
    expect(r.exitCode, show(r)).toBe(0);
    const a = await asUser(`${w.prefix}a`, ['exec', slow, '--', 'id', '-u']);
    oneLine(a, 125, new RegExp(`may not use ${slow}`));
    const r2 = await w.nsroute(['disallow', slow, `%${group}`], { env: rootEnv() });
    expect(r2.exitCode, show(r2)).toBe(0);
    expect(existsSync(sudoers)).toBe(true); // slow2 still allows a
    const r3 = await w.nsroute(['disallow', slow2, `${w.prefix}a`, '--json'], { env: rootEnv() });
    expect(r3.exitCode, show(r3)).toBe(0);
    expect(JSON.parse(r3.stdout)).toMatchObject({ name: slow2, allow: [], sudoers: null, entry: null });
    expect(existsSync(sudoers)).toBe(false);
    expect(existsSync(entry)).toBe(false);
    expect(readFileSync(join(w.configDir, `${slow}.toml`), 'utf8')).toBe('via = "10.99.2.1"\n# the slow uplink\n');
    const b = await asUser(`${w.prefix}b`, ['exec', slow, '--', 'id', '-u']);
    oneLine(b, 125, /may not use nsroute without root/);
    await expectHostClean();
  });
});
