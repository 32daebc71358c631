// `nsroute doctor` in the fake host: a clean host can run nsroute; a policy rule or an nft
// table of another tool that takes nsroute's marks is a clash (exit 4) whose fix, moving the
// mark base in nsroute.conf, really works: the namespace then routes with the new marks.
// Doctor itself changes nothing.
import { chmodSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { DNS_SERVER, SLOW_GW, type Snapshot, type World } from '../world/world.js';
import { PATH4, expectOk, show, useWorld } from '../world/helpers.js';

let w: World;
let clean: Snapshot;
useWorld((world, snapshot) => ((w = world), (clean = snapshot)));

interface Report {
  ok: boolean;
  ids: { markBase: number; tableBase: number; rulePref: number };
  checks: { id: string; status: string; summary: string; fix?: string; owner?: string }[];
}

async function doctor(): Promise<{ code: number | null; report: Report; text: string }> {
  const r = await w.nsroute(['doctor', '--json']);
  let report: Report;
  try {
    report = JSON.parse(r.stdout) as Report;
  } catch {
    throw new Error(`doctor --json printed no JSON\n${show(r)}`);
  }
  return { code: r.exitCode, report, text: show(r) };
}

const CLASH_RULE = ['fwmark', '0x6e720000/0xffff0000', 'lookup', '200', 'pref', '100'];
const conf = () => join(w.configDir, 'nsroute.conf');

describe('nsroute doctor', () => {
  it('says a clean host can run nsroute, and changes nothing', async () => {
    const { code, report, text } = await doctor();
    expect(code, text).toBe(0);
    expect(report.ok).toBe(true);
    expect(report.checks.filter((c) => c.status === 'fail')).toEqual([]);
    for (const id of ['kernel:netns', 'kernel:veth', 'kernel:nft-nat', 'kernel:conntrack', 'tool:ip', 'tool:nft', 'ids']) {
      expect(report.checks.find((c) => c.id === id)?.status, id).toBe('ok');
    }
    const plain = await w.nsroute(['doctor']);
    expect(plain.stdout).toMatch(/^ok {4}network namespaces$/m);
    expect(plain.stdout).toMatch(/nsroute can work on this machine/);
    expect(await w.snapshot()).toEqual(clean);
  });

  it("counts nsroute's own rules (uplink and fail-closed, IPv4 and IPv6) as no clash", async () => {
    const a = w.name('dr1');
    const b = w.name('dr2');
    expectOk(await w.nsroute(['up', a, '--via', SLOW_GW, '--ipv6', 'nat', '--via6', 'fd99:2::1', '--no-watch']));
    expectOk(await w.nsroute(['up', b, '--no-watch']));
    try {
      const { code, report, text } = await doctor();
      expect(code, text).toBe(0);
      expect(report.checks.find((c) => c.id === 'ids'), text).toMatchObject({ status: 'ok' });
      expect(report.checks.filter((c) => c.status === 'warn' && /rule/.test(c.summary)), text).toEqual([]);
    } finally {
      expectOk(await w.nsroute(['down', a]));
      expectOk(await w.nsroute(['down', b]));
    }
    expect(await w.snapshot()).toEqual(clean);
  });

  it('finds a rule that takes nsroute\'s marks (exit 4), and moving the mark base fixes it', async () => {
    expectOk(await w.inHost(['ip', 'rule', 'add', ...CLASH_RULE]));
    try {
      const before = await doctor();
      expect(before.code, before.text).toBe(4);
      const clash = before.report.checks.find((c) => c.id.startsWith('ids:mark'));
      expect(clash?.status).toBe('fail');
      expect(clash?.summary).toContain('pref 100 fwmark 0x6e720000/0xffff0000 lookup 200');
      expect(clash?.fix).toBe("move nsroute's ids: put mark_base = 0x6e730000 in /etc/nsroute/nsroute.conf");

      writeFileSync(conf(), 'mark_base = 0x6e730000\n', { mode: 0o644 });
      const after = await doctor();
      expect(after.code, after.text).toBe(0);
      expect(after.report.ids.markBase).toBe(0x6e730000);

      // The namespace now routes by the new marks, around the clashing rule.
      const name = w.name('moved');
      expectOk(await w.nsroute(['up', name, '--via', SLOW_GW, '--dns', DNS_SERVER]));
      const rules = (await w.inHost(['ip', 'rule', 'show'])).stdout;
      expect(rules).toMatch(/^4200:\s+from all fwmark 0x6e730001 lookup 7101/m);
      const path = await w.inNetns(name, PATH4);
      expect(path.stdout).toMatch(/^slow /);

      // A namespace keeps its ids: with another base configured now, the old one stays in force.
      writeFileSync(conf(), 'mark_base = 0x6e740000\n', { mode: 0o644 });
      const list = await w.nsroute(['list']);
      expect(list.stderr).toMatch(/not in effect yet; namespaces created with mark base 0x6e730000/);
      expectOk(await w.nsroute(['down', name]));
    } finally {
      rmSync(conf(), { force: true });
      await w.inHost(['ip', 'rule', 'del', ...CLASH_RULE]);
    }
    expect(await w.snapshot()).toEqual(clean);
  });

  it('names another tool\'s nft table that tags packets with nsroute\'s mark', async () => {
    const table = 'table ip calico {\n\tchain cali-PREROUTING {\n\t\ttype filter hook prerouting priority mangle; policy accept;\n\t\tmeta mark set 0x6e720005\n\t}\n}\n';
    expectOk(await w.inHost(['nft', '-f', '-'], { input: table }));
    try {
      const { code, report, text } = await doctor();
      expect(code, text).toBe(4);
      expect(report.checks.find((c) => c.owner === 'Calico')).toMatchObject({ status: 'fail' });
    } finally {
      await w.inHost(['nft', 'delete', 'table', 'ip', 'calico']);
    }
    expect(await w.snapshot()).toEqual(clean);
  });

  it('refuses an nsroute.conf that is writable by others', async () => {
    writeFileSync(conf(), 'mark_base = 0x6e730000\n');
    chmodSync(conf(), 0o666); // umask would drop the bits given to writeFileSync
    try {
      const { code, report } = await doctor();
      expect(code).toBe(4);
      expect(report.checks.find((c) => c.id === 'ids:config')?.summary).toMatch(/owned by root and writable by nobody else/);
      const r = await w.nsroute(['list']);
      expect(r.exitCode).toBe(2);
    } finally {
      rmSync(conf(), { force: true });
    }
  });
});
