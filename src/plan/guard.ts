import { cidrToString, mergedRanges, parseStateCidr4, ULA_PREFIX, type Cidr4 } from '../net/addresses.js';
import { hex, HOST_MARK } from '../net/nft.js';
import { RULE_PREF } from '../net/ids.js';
import type { NamespaceConfig } from './types.js';

// The fail-closed guard: policy rules that keep a namespace's traffic off the host's main
// table when nsroute's firewall mark is missing (an `nft flush ruleset`, a firewall reload,
// a flushed uplink table). The mark rule of each uplink (pref 4200, plan.ts) comes first;
// then, for packets the host forwards from nsroute's blocks:
//
//   4201  iif lo goto 4203                 the host's own traffic is never touched
//   4201  fwmark HOST_MARK goto 4203       namespaces without --via: the host's routing
//   4202  from BLOCK unreachable           anything else from nsroute's blocks: no route
//   4203  nop                              where the gotos land (without it they are skipped,
//                                          so a lost 4203 also fails closed)
// (4200 + 1..3 by default: the uplink rule's priority moves with rule_pref, net/ids.ts.)
//
// For IPv4, BLOCK is the exact union of the blocks of the nat namespaces that have an uplink,
// aggregated into the fewest CIDRs (allocation is first-free from the start of a pool, so N
// namespaces need about log2(N) rules, never one per namespace, and never a block that is
// not nsroute's). Namespaces without --via follow the host's routing and are left out:
// reverse-path filtering (rp_filter 1 or 2) looks up a reply's source route *from* the
// namespace's address, through the device the reply is forwarded to, without the packet's
// mark unless src_valid_mark is set on the device it came in by; for an uplink nsroute sets
// that (its replies carry the uplink mark again), but host routing can bring replies in by
// any device. For IPv6, which has no rp_filter, BLOCK is nsroute's own ULA /32
// (net/addresses.ts), and namespaces without --via pass it by the host mark. Ordered rules,
// not a per-namespace list: the route lookup costs the same with 1 or 1000 namespaces.
export function guardPrefs(rulePref = RULE_PREF): { skip: number; block: number; target: number } {
  return { skip: rulePref + 1, block: rulePref + 2, target: rulePref + 3 };
}
export const ULA_BLOCK6 = `${ULA_PREFIX}::/32`;

export interface GuardRules {
  v4: string[]; // `ip rule` arguments, e.g. "pref 4202 from 10.231.0.0/29 unreachable"
  v6: string[];
}

// Fewest CIDR blocks whose union is exactly the union of the given blocks.
// One sort and one pass: cheap with 1000 namespaces.
export function aggregateBlocks(blocks: readonly Cidr4[]): Cidr4[] {
  const merged = mergedRanges(blocks);
  const out: Cidr4[] = [];
  for (const [start, end] of merged) {
    let at = start;
    while (at < end) {
      // The largest aligned block starting at `at` that still fits before `end`.
      let size = at === 0 ? 2 ** 32 : 2 ** Math.min(32, ctz(at));
      while (at + size > end) size /= 2;
      out.push({ network: at, prefix: 32 - Math.log2(size) });
      at += size;
    }
  }
  return out;
}

function ctz(n: number): number {
  let c = 0;
  while (n % 2 === 0 && c < 32) {
    n /= 2;
    c++;
  }
  return c;
}

function common(): string[] {
  const { skip, target } = guardPrefs();
  return [`pref ${target} nop`, `pref ${skip} iif lo goto ${target}`, `pref ${skip} fwmark ${hex(HOST_MARK)} goto ${target}`];
}

// The guard rules the given namespaces need (nat mode only: bridge and macvlan traffic is not
// routed by the host; IPv4 only for namespaces with an uplink, see above). Order matters when they are added: the landing rule and the skips
// before the blocks, so the host's own traffic is never caught in between.
export function renderGuardRules(configs: readonly NamespaceConfig[]): GuardRules {
  const nat = configs.filter((c) => c.mode === 'nat' && c.subnet);
  const { block } = guardPrefs();
  const blocks = aggregateBlocks(nat.filter((c) => c.uplink).map((c) => parseStateCidr4(c.subnet)));
  const v4 = blocks.length > 0 ? [...common(), ...blocks.map((b) => `pref ${block} from ${cidrToString(b)} unreachable`)] : [];
  const v6 = nat.some((c) => c.ipv6 === 'nat') ? [...common(), `pref ${block} from ${ULA_BLOCK6} unreachable`] : [];
  return { v4, v6 };
}

type Json = Record<string, unknown>;

function keysAre(r: Json, keys: readonly string[]): boolean {
  const have = Object.keys(r).sort();
  return have.length === keys.length && [...keys].sort().every((k, i) => have[i] === k);
}

// A rule of `ip -j rule show` as guard-rule arguments, when it has exactly the shape of one
// of ours (the priority alone is not enough: another tool may use 4201-4203 too). `doctor`
// passes the ids it judges by; everything else uses the ones in force.
export function guardRuleOf(r: Json, rulePref = RULE_PREF, hostMark = HOST_MARK): string | undefined {
  const p = Number(r.priority);
  const { skip: GUARD_SKIP_PREF, block: GUARD_BLOCK_PREF, target: GUARD_TARGET_PREF } = guardPrefs(rulePref);
  const srcAll = r.src === 'all';
  if (p === GUARD_TARGET_PREF && srcAll && 'nop' in r && keysAre(r, ['priority', 'src', 'nop'])) return `pref ${p} nop`;
  if (p === GUARD_SKIP_PREF && srcAll && r.goto === GUARD_TARGET_PREF) {
    if (r.iif === 'lo' && keysAre(r, ['priority', 'src', 'iif', 'goto'])) return `pref ${p} iif lo goto ${GUARD_TARGET_PREF}`;
    if (typeof r.fwmark === 'string' && Number(r.fwmark) === hostMark && (r.fwmask === undefined || Number(r.fwmask) === 0xffffffff)) {
      if (keysAre(r, r.fwmask === undefined ? ['priority', 'src', 'fwmark', 'goto'] : ['priority', 'src', 'fwmark', 'fwmask', 'goto'])) {
        return `pref ${p} fwmark ${hex(hostMark)} goto ${GUARD_TARGET_PREF}`;
      }
    }
  }
  if (p === GUARD_BLOCK_PREF && r.action === 'unreachable' && typeof r.src === 'string' && !srcAll && keysAre(r, ['priority', 'src', 'srclen', 'action'])) {
    const src = r.src.includes(':') ? normalize6(r.src) : r.src;
    return `pref ${p} from ${src}/${Number(r.srclen)} unreachable`;
  }
  return undefined;
}

function normalize6(ip: string): string {
  return ip.toLowerCase();
}

export function currentGuardRules(json: unknown): string[] {
  return (Array.isArray(json) ? (json as Json[]) : []).flatMap((r) => {
    const g = r && typeof r === 'object' ? guardRuleOf(r) : undefined;
    return g ? [g] : [];
  });
}

// The `ip -batch` lines that turn `current` into `wanted`: additions first (in the order
// rendered: landing rule, skips, blocks), then removals in the reverse order (blocks first,
// the landing rule last), so at no instant is a namespace's block without its rule.
export function guardSyncLines(current: readonly string[], wanted: readonly string[]): string[] {
  const have = new Set(current);
  const want = new Set(wanted);
  const add = wanted.filter((r) => !have.has(r));
  const { skip, block } = guardPrefs();
  const order = (r: string) => (r.includes(`pref ${block} `) ? 0 : r.includes(`pref ${skip} `) ? 1 : 2);
  const del = [...new Set(current)].filter((r) => !want.has(r)).sort((a, b) => order(a) - order(b));
  // A rule listed twice (added by hand) is removed once per copy beyond the first.
  const extra = current.filter((r, i) => want.has(r) && current.indexOf(r) !== i);
  return [...add.map((r) => `rule add ${r}`), ...del.map((r) => `rule del ${r}`), ...extra.map((r) => `rule del ${r}`)];
}
