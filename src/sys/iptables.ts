import { existsSync, readFileSync } from 'node:fs';
import { run } from './run.js';
import { forwardChains, renderHoleDeletes, renderHoleInserts, xtablesForwardChains } from '../net/fwholes.js';

// Holes in another tool's FORWARD policy. Docker sets the iptables FORWARD policy to DROP
// (ufw and others do similar); a packet dropped by any base chain at the forward hook is
// dropped, whatever nsroute's own table says, so the namespaces' traffic has to be let
// through in that chain itself. nsroute adds one chain of its own per iptables backend and
// family, NSROUTE-FORWARD (accept from nsr* interfaces, and replies to them), jumped to
// from the top of FORWARD. It touches only backends whose filter table already exists, so
// a host without iptables rules keeps having none; the rules use the interface wildcard
// nsr+, so they do not grow with the number of namespaces. Native nftables forward chains of
// other tools get the same two rules at their top (net/fwholes.ts).
export const CHAIN = 'NSROUTE-FORWARD';

export interface Backend {
  bin: string; // iptables-nft, ip6tables-legacy, ...
  family: 4 | 6;
  kind: 'nft' | 'legacy';
}

const BACKENDS: Backend[] = [
  { bin: 'iptables-nft', family: 4, kind: 'nft' },
  { bin: 'ip6tables-nft', family: 6, kind: 'nft' },
  { bin: 'iptables-legacy', family: 4, kind: 'legacy' },
  { bin: 'ip6tables-legacy', family: 6, kind: 'legacy' },
];

const SBIN = ['/usr/sbin', '/sbin', '/usr/bin', '/bin'];

function binaryExists(bin: string): boolean {
  return SBIN.some((d) => existsSync(`${d}/${bin}`));
}

// Does this backend have a filter table here? Checked without the iptables binary, which
// could create the table just by listing it.
// A legacy iptables filter table exists in this network namespace (invisible to nft).
function legacyFilterTable(family: 4 | 6): boolean {
  try {
    return readFileSync(`/proc/net/${family === 4 ? 'ip' : 'ip6'}_tables_names`, 'utf8').split('\n').includes('filter');
  } catch {
    return false;
  }
}

// From the ruleset nft already listed (iptables-nft's tables are nft tables): no `nft list
// chain` per backend.
function hasFilterTable(b: Backend, ruleset: unknown): boolean {
  if (b.kind === 'legacy') return legacyFilterTable(b.family);
  return xtablesForwardChains(ruleset).some((c) => c.family === (b.family === 4 ? 'ip' : 'ip6'));
}

async function ipt(b: Backend, args: readonly string[]): Promise<{ exitCode: number; stdout: string; stderr: string }> {
  const r = await run([b.bin, '-w', '5', ...args], { allowFail: true });
  return { exitCode: r.exitCode ?? 1, stdout: r.stdout, stderr: r.stderr };
}

async function mustIpt(b: Backend, args: readonly string[]): Promise<void> {
  const r = await ipt(b, args);
  if (r.exitCode !== 0) throw new Error(`${b.bin} ${args.join(' ')} failed: ${r.stderr.trim()}`);
}

// Backends whose FORWARD chain would stop the namespaces' traffic: policy DROP, or any rule
// at all (a final DROP/REJECT rule is how ufw and others do it).
async function restrictive(b: Backend): Promise<boolean> {
  const r = await ipt(b, ['-S', 'FORWARD']);
  if (r.exitCode !== 0) return false;
  const lines = r.stdout.split('\n').filter(Boolean);
  return lines.some((l) => l === '-P FORWARD DROP') || lines.some((l) => l.startsWith('-A FORWARD ') && !l.includes(`-j ${CHAIN}`));
}

export async function activeBackends(ruleset?: unknown): Promise<Backend[]> {
  const json = ruleset ?? (await nftRuleset());
  return BACKENDS.filter((b) => binaryExists(b.bin) && hasFilterTable(b, json));
}

// Legacy iptables filter tables exist here (not visible to nft).
export function legacyFilterTables(): boolean {
  return legacyFilterTable(4) || legacyFilterTable(6);
}

async function nftRuleset(): Promise<unknown> {
  const r = await run(['nft', '-j', 'list', 'ruleset'], { allowFail: true });
  return r.exitCode === 0 && r.stdout.trim() ? JSON.parse(r.stdout) : undefined;
}

async function nativeForwardChains(ruleset?: unknown) {
  return forwardChains(ruleset ?? (await nftRuleset()));
}

// Makes the holes exist where they are needed. Idempotent: run on every change and every
// repair (a firewall reload removes them). `ruleset`: an `nft -j list ruleset` the caller
// read already (under the host lock), so a host without other firewalls costs no spawn.
export async function ensureForwardHoles(ruleset?: unknown): Promise<void> {
  const json = ruleset ?? (await nftRuleset());
  const inserts = renderHoleInserts(forwardChains(json));
  if (inserts) await run(['nft', '-f', '-'], { input: inserts });
  for (const b of await activeBackends(json)) {
    const has = (await ipt(b, ['-S', CHAIN])).exitCode === 0;
    if (!has && !(await restrictive(b))) continue;
    if (!has) await mustIpt(b, ['-N', CHAIN]);
    const rules = (await ipt(b, ['-S', CHAIN])).stdout;
    if (!rules.includes('-i nsr+')) await mustIpt(b, ['-A', CHAIN, '-i', 'nsr+', '-j', 'ACCEPT']);
    if (!rules.includes('-o nsr+')) await mustIpt(b, ['-A', CHAIN, '-o', 'nsr+', '-m', 'conntrack', '--ctstate', 'RELATED,ESTABLISHED', '-j', 'ACCEPT']);
    if ((await ipt(b, ['-C', 'FORWARD', '-j', CHAIN])).exitCode !== 0) await mustIpt(b, ['-I', 'FORWARD', '1', '-j', CHAIN]);
  }
}

// Whether the holes are in place where they are needed (for `check`).
export async function forwardHolesMissing(): Promise<string[]> {
  const ruleset = await nftRuleset();
  const missing: string[] = (await nativeForwardChains(ruleset)).filter((c) => c.restrictive && c.ourRules.length === 0).map((c) => `nft ${c.family} ${c.table} ${c.name}`);
  for (const b of await activeBackends(ruleset)) {
    if (!(await restrictive(b))) continue;
    if ((await ipt(b, ['-C', 'FORWARD', '-j', CHAIN])).exitCode !== 0) missing.push(b.bin);
  }
  return missing;
}

// Backends where nsroute's chain exists (gc: leftovers once no namespace needs them).
export async function forwardHolesPresent(): Promise<string[]> {
  const ruleset = await nftRuleset();
  const out: string[] = (await nativeForwardChains(ruleset)).filter((c) => c.ourRules.length > 0).map((c) => `nft ${c.family} ${c.table} ${c.name}`);
  for (const b of await activeBackends(ruleset)) if ((await ipt(b, ['-S', CHAIN])).exitCode === 0) out.push(b.bin);
  return out;
}

export async function removeForwardHoles(): Promise<void> {
  const ruleset = await nftRuleset();
  const deletes = renderHoleDeletes(forwardChains(ruleset));
  if (deletes) await run(['nft', '-f', '-'], { input: deletes });
  for (const b of await activeBackends(ruleset)) {
    if ((await ipt(b, ['-S', CHAIN])).exitCode !== 0) continue;
    while ((await ipt(b, ['-D', 'FORWARD', '-j', CHAIN])).exitCode === 0) {
      /* every jump, should there be more than one */
    }
    await mustIpt(b, ['-F', CHAIN]);
    await mustIpt(b, ['-X', CHAIN]);
  }
}
