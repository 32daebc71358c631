// Reads what `nsroute doctor` judges (doctor/evaluate.ts). Changes nothing on the host: the
// kernel features are tried in a throwaway network namespace (`unshare --net`), which the
// kernel removes with everything in it when the probe script exits.
import { existsSync, readFileSync } from 'node:fs';
import { delimiter, join } from 'node:path';
import { activeBackends } from '../sys/iptables.js';
import { readTextIfExists } from '../sys/fsx.js';
import { loadIds } from '../sys/ids.js';
import { run } from '../sys/run.js';
import { currentIds } from '../net/ids.js';
import { hostResolvConfPath, resolvedConfPath } from '../state/paths.js';
import { KERNEL_PROBES, type DoctorFacts, type KernelProbe, type Probe } from './evaluate.js';

// A fixed script (no input of the user's is put into it), run inside `unshare --net`: one
// line "ID ok" or "ID fail FIRST-LINE-OF-STDERR" per feature.
export const PROBE_SCRIPT = `
r() { n=$1; shift; if e=$("$@" 2>&1 >/dev/null); then echo "$n ok"; else echo "$n fail $(printf '%s' "$e" | head -n 1)"; fi; }
nf() { printf '%s\\n' "$1" | nft -f -; }
echo "netns ok"
r veth ip link add nsrdoc0 type veth peer name nsrdoc1
r policy-routing sh -c 'ip rule add fwmark 0x1 lookup 100 pref 100 && ip route add unreachable default table 100'
r nft-nat nf 'table ip nsrdoc_nat {
  chain p {
    type nat hook postrouting priority srcnat
    masquerade
  }
}'
r nft-fib nf 'table inet nsrdoc_fib {
  chain c {
    type filter hook prerouting priority 0
    fib daddr type local accept
  }
}'
r conntrack nf 'table inet nsrdoc_ct {
  chain c {
    type filter hook prerouting priority 0
    ct state established accept; ct mark set meta mark
  }
}'
r nft-socket nf 'table inet nsrdoc_sk {
  chain c {
    type filter hook prerouting priority 0
    socket transparent 1 accept
  }
}'
r tc tc qdisc add dev lo root tbf rate 1mbit burst 32kbit latency 50ms
r bridge ip link add nsrdocbr type bridge
r macvlan ip link add nsrdocmv link nsrdoc0 type macvlan mode bridge
r ipv6 test -d /proc/sys/net/ipv6/conf
`;

export function parseProbes(stdout: string): Partial<Record<KernelProbe, Probe>> {
  const out: Partial<Record<KernelProbe, Probe>> = {};
  for (const line of stdout.split('\n')) {
    const m = /^(\S+) (ok|fail)(?: (.*))?$/.exec(line);
    if (!m || !(KERNEL_PROBES as readonly string[]).includes(m[1]!)) continue;
    out[m[1] as KernelProbe] = m[2] === 'ok' ? { ok: true } : { ok: false, error: m[3] || 'failed' };
  }
  return out;
}

const SBIN = ['/usr/sbin', '/sbin', '/usr/bin', '/bin'];
function which(bin: string): string | undefined {
  const dirs = [...(process.env.PATH ?? '').split(delimiter).filter(Boolean), ...SBIN];
  return dirs.map((d) => join(d, bin)).find((p) => existsSync(p));
}

async function out(argv: string[], input?: string): Promise<{ exitCode: number; stdout: string; stderr: string }> {
  try {
    return await run(argv, { allowFail: true, ...(input !== undefined ? { input } : {}) });
  } catch (e) {
    return { exitCode: -1, stdout: '', stderr: (e as Error).message };
  }
}

async function json(argv: string[]): Promise<unknown> {
  const r = await out(argv);
  try {
    return r.exitCode === 0 && r.stdout.trim() ? JSON.parse(r.stdout) : [];
  } catch {
    return [];
  }
}

async function version(tool: string, argv: string[]): Promise<string | null> {
  const path = which(tool);
  if (!path) return null;
  if (argv.length === 0) return path;
  const r = await out([path, ...argv]);
  return (r.stdout || r.stderr).split('\n')[0]?.trim() || path;
}

function sysctl(key: string): string | undefined {
  try {
    return readFileSync(`/proc/sys/${key.replace(/\./g, '/')}`, 'utf8').trim();
  } catch {
    return undefined;
  }
}

async function probes(): Promise<Partial<Record<KernelProbe, Probe>>> {
  const unshare = which('unshare');
  if (!unshare) return { netns: { ok: false, error: 'unshare (util-linux) is missing' } };
  const r = await out([unshare, '--net', 'sh', '-s'], PROBE_SCRIPT);
  const found = parseProbes(r.stdout);
  if (!found.netns) return { netns: { ok: false, error: r.stderr.split('\n')[0] || `unshare --net failed (exit ${r.exitCode})` } };
  return found;
}

async function iptablesForward(): Promise<DoctorFacts['iptablesForward']> {
  const backends = await activeBackends().catch(() => []);
  return Promise.all(backends.map(async (b) => ({ bin: b.bin, lines: (await out([b.bin, '-w', '5', '-S', 'FORWARD'])).stdout.split('\n').filter(Boolean) })));
}

export async function gatherDoctorFacts(): Promise<DoctorFacts> {
  let idsConf: DoctorFacts['idsConf'];
  try {
    const l = loadIds();
    idsConf = { configured: l.configured, deferred: l.deferred, ...(l.file ? { file: l.file } : {}) };
  } catch (e) {
    idsConf = { error: (e as Error).message };
  }
  const [ip, nft, tc, iptables, systemctl, kernel, rules4, rules6, routes4, routes6, nftText, nftJson, fwd] = await Promise.all([
    version('ip', ['-V']),
    version('nft', ['--version']),
    version('tc', ['-V']),
    version('iptables', ['--version']),
    version('systemctl', []),
    probes(),
    json(['ip', '-j', 'rule', 'show']),
    json(['ip', '-6', '-j', 'rule', 'show']),
    json(['ip', '-j', 'route', 'show', 'table', 'all']),
    json(['ip', '-6', '-j', 'route', 'show', 'table', 'all']),
    out(['nft', 'list', 'ruleset']).then((r) => r.stdout),
    json(['nft', '-j', 'list', 'ruleset']),
    iptablesForward(),
  ]);
  const resolvedUpstreams = readTextIfExists(resolvedConfPath());
  const resolvConf = readTextIfExists(hostResolvConfPath());
  return {
    nodeVersion: process.version,
    tools: { ip, nft, nsenter: (await version('nsenter', [])) ?? null, setpriv: (await version('setpriv', [])) ?? null, tc, udhcpc: (await version('udhcpc', [])) ?? null, iptables, systemctl },
    probes: kernel,
    mounts: readTextIfExists('/proc/self/mounts') ?? '',
    systemdRunning: existsSync('/run/systemd/system'),
    ...(resolvConf !== undefined ? { resolvConf } : {}),
    ...(resolvedUpstreams !== undefined ? { resolvedUpstreams } : {}),
    nscdSocket: existsSync('/var/run/nscd/socket') || existsSync('/run/nscd/socket'),
    rules4,
    rules6,
    routes4,
    routes6,
    nftText,
    nftJson,
    iptablesForward: fwd,
    sysctls: Object.fromEntries(['net.ipv4.conf.all.rp_filter', 'net.ipv4.conf.default.rp_filter', 'net.ipv4.ip_forward'].map((k) => [k, sysctl(k)])),
    ids: currentIds(),
    idsConf,
  };
}
