import { nodeCrypto } from '../sys/lazy-builtins.js';
import { UserError } from '../errors.js';

// Namespace names become file names (/run/netns/NAME, /etc/netns/NAME, NAME.toml), so no dots or slashes.
const NAME_RE = /^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$/;

export function validateName(name: string): string {
  if (!NAME_RE.test(name)) {
    throw new UserError(
      `invalid namespace name ${JSON.stringify(name)}`,
      'use 1-64 letters, digits, "-" or "_", starting with a letter or digit',
    );
  }
  return name;
}

export const IFNAMSIZ_MAX = 15;
export const HOST_IFACE_PREFIX = 'nsr';

// Host end of the veth: "nsr-NAME" while it fits the kernel's 15 characters; otherwise
// "nsr." + 11 base32 characters of sha256(NAME): 55 bits, so that two names colliding takes
// ~2^27 names, not the few thousand of a 24-bit hash. NAME never contains ".", so the two
// forms cannot collide. `attempt` > 0 gives further candidates, all hashed
// (sha256(NAME "#" attempt)), for when the first one is taken by another namespace
// (plan.ts chooseHostIface); the chosen name is stored in the state and the owner tag, never
// recomputed, so teardown and gc find it whatever the attempt was.
export function hostIfaceName(name: string, attempt = 0): string {
  const short = `${HOST_IFACE_PREFIX}-${name}`;
  if (attempt === 0 && short.length <= IFNAMSIZ_MAX) return short;
  const input = attempt === 0 ? name : `${name}#${attempt}`;
  return `${HOST_IFACE_PREFIX}.${base32(nodeCrypto().createHash('sha256').update(input).digest(), IFNAMSIZ_MAX - HOST_IFACE_PREFIX.length - 1)}`;
}

const BASE32 = 'abcdefghijklmnopqrstuvwxyz234567';

// The first `chars` * 5 bits of `bytes`, as lowercase RFC 4648 base32 (valid in ifnames).
function base32(bytes: Uint8Array, chars: number): string {
  let out = '';
  for (let i = 0; i < chars; i++) {
    const bit = i * 5;
    const byte = bit >> 3;
    const word = ((bytes[byte]! << 8) | (bytes[byte + 1] ?? 0)) >>> 0;
    out += BASE32[(word >> (11 - (bit & 7))) & 31];
  }
  return out;
}

export const NS_IFACE = 'eth0';

// Interfaces nsroute owns on the host all start like this (used in nft rules and gc).
export const HOST_IFACE_GLOB = `${HOST_IFACE_PREFIX}*`;

// The order names, interfaces and paths are listed and rendered in: by code point, as `ls`
// in the C locale. localeCompare's (ICU's) cost `list` ~9 ms at 1000 NAMEs, most of it loading
// the collation data, for names that are plain ASCII anyway.
export function compareNames(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}
