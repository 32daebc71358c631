import { readFileSync } from 'node:fs';
import { SysError, UserError } from '../errors.js';

// Capabilities nsroute needs besides uid 0: CAP_NET_ADMIN for links, addresses, routes,
// rules and nft; CAP_SYS_ADMIN for `ip netns add` (a mount) and for entering a namespace.
// Root in a container (docker without --cap-add NET_ADMIN) or in a unit with a
// CapabilityBoundingSet= lacks them, and the first `ip` call would fail with a raw
// two-line "RTNETLINK answers: Operation not permitted".
const NEEDED: readonly [string, number][] = [
  ['CAP_NET_ADMIN', 12],
  ['CAP_SYS_ADMIN', 21],
];

// The effective set of this process, from /proc/self/status (no spawn). undefined: unreadable
// (no /proc), in which case nothing is claimed and the tools' own errors speak.
export function effectiveCaps(status?: string): bigint | undefined {
  let text = status;
  if (text === undefined) {
    try {
      text = readFileSync('/proc/self/status', 'utf8');
    } catch {
      return undefined;
    }
  }
  const m = /^CapEff:\s*([0-9a-f]+)\s*$/m.exec(text);
  return m ? BigInt(`0x${m[1]}`) : undefined;
}

export function missingCaps(eff = effectiveCaps()): string[] {
  if (eff === undefined) return [];
  return NEEDED.filter(([, bit]) => (eff & (1n << BigInt(bit))) === 0n).map(([name]) => name);
}

const FIX = 'give it to nsroute: `docker run --cap-add NET_ADMIN --cap-add SYS_ADMIN`, `systemd-nspawn --capability=CAP_NET_ADMIN`, or add it to the unit\'s CapabilityBoundingSet=';

// One line naming what is missing and the fix, before anything is looked at or changed.
export function requireNetworkCaps(eff = effectiveCaps()): void {
  const missing = missingCaps(eff);
  if (missing.length === 0) return;
  throw new UserError(`nsroute runs as root but without ${missing.join(' and ')} (a container, or a capability bounding set)`, FIX);
}

// A tool refused with EPERM although the capabilities looked right (a user namespace that
// does not own the network namespace, an LSM): the same one line instead of the tool's two.
export function permissionError(e: unknown): UserError | undefined {
  if (!(e instanceof SysError) || !/Operation not permitted/.test(e.stderr)) return undefined;
  const tool = e.argv[0] ?? 'a tool';
  return new UserError(`\`${tool}\` was refused (Operation not permitted): nsroute needs CAP_NET_ADMIN and CAP_SYS_ADMIN over the host's network namespace`, FIX);
}
