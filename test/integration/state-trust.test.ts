// nsroute's state on disk is root's alone: the run and lib dirs and every file in them are
// created with exact modes whatever the umask, and a directory or file someone else could
// have written is refused, never acted on (a planted journal would make gc delete whatever
// it names).
import { chmodSync, chownSync, lstatSync, mkdirSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { DNS_SERVER, NSROUTE_JS, SLOW_GW, waitFor, type Snapshot, type World } from '../world/world.js';
import { nsrouteProcesses } from '../world/procs.js';
import { expectOk, expectUserError, show, useWorld } from '../world/helpers.js';

let w: World;
let clean: Snapshot;
useWorld((world, snapshot) => ((w = world), (clean = snapshot)));

const ROUTE = ['--via', SLOW_GW, '--dns', DNS_SERVER];
const NOBODY = 65534;

// Every directory and file under dir with its mode.
function modes(dir: string): Record<string, number> {
  const out: Record<string, number> = { '.': lstatSync(dir).mode & 0o7777 };
  const walk = (rel: string) => {
    for (const e of readdirSync(join(dir, rel))) {
      const r = rel ? `${rel}/${e}` : e;
      const st = lstatSync(join(dir, r));
      out[r] = st.mode & 0o7777;
      if (st.isDirectory()) walk(r);
    }
  };
  walk('');
  return out;
}

describe('under umask 000', () => {
  it('run dir, lib dir and every file in them get exact modes; /etc/netns files are 0755/0644', async () => {
    const n = w.name('um1');
    const run = join(w.dir, 'run-umask');
    const lib = join(w.dir, 'lib-umask');
    const env = { NSROUTE_RUN_DIR: run, NSROUTE_LIB_DIR: lib };
    const umask0 = (args: string[]) => w.inHost(['sh', '-c', 'umask 000; exec "$@"', 'sh', process.execPath, NSROUTE_JS, ...args], { env });
    try {
      expectOk(await umask0(['up', n, ...ROUTE]));
      const r = modes(run);
      expect(r).toMatchObject({ '.': 0o700, lock: 0o600, ns: 0o700, [`ns/${n}`]: 0o700, [`ns/${n}/state.json`]: 0o600, [`ns/${n}/journal.jsonl`]: 0o600 });
      const l = modes(lib);
      expect(l).toMatchObject({ '.': 0o700, 'host.json': 0o600, files: 0o700, [`files/${n}`]: 0o700 });
      for (const [path, mode] of [...Object.entries(r), ...Object.entries(l)]) expect(mode & 0o077, `${path} ${mode.toString(8)}`).toBe(0);
      expect(statSync(`/etc/netns/${n}`).mode & 0o7777).toBe(0o755);
      expect(statSync(`/etc/netns/${n}/resolv.conf`).mode & 0o7777).toBe(0o644);
      expectOk(await umask0(['down', n]));
    } finally {
      await w.nsroute(['down', n], { env });
      // `up` started this run dir's host watcher; it ends by itself once nothing is up, and on
      // its way out takes the host lock (RUN/lock): removing the dir before would race it.
      await waitFor(() => nsrouteProcesses(run).length === 0, `the watcher of ${run} to end`, 60_000);
      rmSync(run, { recursive: true, force: true });
      rmSync(lib, { recursive: true, force: true });
    }
    expect(await w.snapshot()).toEqual(clean);
  });
});

describe('directories others can write', () => {
  it('a world-writable run dir, or one owned by another user, is refused with one line and nothing changed', async () => {
    const n = w.name('ww1');
    try {
      for (const spoil of [() => chmodSync(w.runDir, 0o777), () => chmodSync(w.runDir, 0o770), () => chownSync(w.runDir, NOBODY, NOBODY)]) {
        spoil();
        const list = await w.nsroute(['list']);
        expectUserError(list, 2);
        expect(list.stderr).toContain(`the run directory ${w.runDir} `);
        const exec = await w.nsroute(['exec', n, ...ROUTE, '--', 'true']);
        expectUserError(exec, 125);
        expect(w.netnsExists(n)).toBe(false);
        chownSync(w.runDir, 0, 0);
        chmodSync(w.runDir, 0o755);
      }
    } finally {
      chownSync(w.runDir, 0, 0);
      chmodSync(w.runDir, 0o755);
    }
    expect(await w.snapshot()).toEqual(clean);
  });

  it('a run dir under a world-writable directory that is not sticky is refused; under a sticky one it is fine', async () => {
    const open = join(w.dir, 'open');
    mkdirSync(open);
    try {
      chmodSync(open, 0o777);
      const env = { NSROUTE_RUN_DIR: join(open, 'run') };
      const r = await w.nsroute(['list'], { env });
      expectUserError(r, 2);
      expect(r.stderr).toContain(`is inside ${open}, which others can write (and is not sticky)`);
      chmodSync(open, 0o1777);
      expectOk(await w.nsroute(['list'], { env }));
      expect(statSync(join(open, 'run')).mode & 0o7777).toBe(0o700);
    } finally {
      rmSync(open, { recursive: true, force: true });
    }
  });
});

describe('a planted journal', () => {
  // A journal whose undo deletes a namespace and a link that are not nsroute's.
  async function plant(evil: string, victim: string, spoil: (dir: string, journal: string) => void): Promise<void> {
    expectOk(await w.inHost(['ip', 'netns', 'add', victim]));
    expectOk(await w.inHost(['ip', 'link', 'add', 'victim0', 'type', 'veth', 'peer', 'name', 'victim1']));
    const dir = join(w.runDir, 'ns', evil);
    mkdirSync(dir, { recursive: true, mode: 0o700 });
    const journal = join(dir, 'journal.jsonl');
    const steps = [
      { kind: 'netns-add', name: victim },
      { kind: 'veth-add', netns: victim, hostIface: 'victim0', nsIface: 'eth0', hostCidr: '10.250.0.1/30', tag: 'x' },
    ];
    writeFileSync(journal, steps.map((step, i) => JSON.stringify({ op: 'do', i, step })).join('\n') + '\n', { mode: 0o600 });
    spoil(dir, journal);
  }

  const cases: [string, (dir: string, journal: string) => void][] = [
    ['owned by nobody', (_d, j) => chownSync(j, NOBODY, NOBODY)],
    ['group-writable', (_d, j) => chmodSync(j, 0o620)],
    ['in a world-writable directory', (d) => chmodSync(d, 0o777)],
  ];
  for (const [what, spoil] of cases) {
    it(`${what}: gc reports it and deletes nothing; the commands on its NAME refuse`, async () => {
      const evil = w.name('ev1');
      const victim = w.name('vic1');
      try {
        await plant(evil, victim, spoil);
        const gc = await w.nsroute(['gc', '--json']);
        expectOk(gc);
        const kept = (JSON.parse(gc.stdout) as { kept: { name: string; reason: string }[] }).kept;
        expect(kept, show(gc)).toEqual([{ name: evil, reason: expect.stringMatching(/nsroute does not trust it/) }]);
        expect(w.netnsExists(victim)).toBe(true);
        expect((await w.inHost(['ip', 'link', 'show', 'victim0'])).exitCode).toBe(0);
        const down = await w.nsroute(['down', evil]);
        expectUserError(down, 2);
        expect(down.stderr).toMatch(/nsroute does not trust it/);
        expect(w.netnsExists(victim)).toBe(true);
        expect((await w.inHost(['ip', 'link', 'show', 'victim0'])).exitCode).toBe(0);
      } finally {
        rmSync(join(w.runDir, 'ns', evil), { recursive: true, force: true });
        await w.inHost(['ip', 'link', 'del', 'victim0']);
        await w.inHost(['ip', 'netns', 'del', victim]);
      }
      expect(await w.snapshot()).toEqual(clean);
    });
  }

  it('a host.json owned by nobody is refused before the first change', async () => {
    const n = w.name('hj1');
    const host = join(w.libDir, 'host.json');
    mkdirSync(w.libDir, { recursive: true, mode: 0o700 });
    const boot = (await w.inHost(['cat', '/proc/sys/kernel/random/boot_id'])).stdout.trim();
    writeFileSync(host, JSON.stringify({ forwarding: { saved: { ip_forward: '1' } }, bootId: boot }));
    chownSync(host, NOBODY, NOBODY);
    try {
      const up = await w.nsroute(['up', n, ...ROUTE, '--no-watch']);
      expectUserError(up, 2);
      expect(up.stderr).toContain(`${host} is owned by uid ${NOBODY}, not root`);
      expect(w.netnsExists(n)).toBe(false);
      expect(await w.snapshot()).toEqual(clean);
    } finally {
      rmSync(host, { force: true });
    }
  });
});
