import { createHash } from 'node:crypto';
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
// "nsr." + 4 chars + "." + hash. NAME never contains ".", so the two forms cannot collide,
// and names that share a long prefix still get distinct interfaces.
export function hostIfaceName(name: string): string {
  const short = `${HOST_IFACE_PREFIX}-${name}`;
  if (short.length <= IFNAMSIZ_MAX) return short;
  const hash = createHash('sha256').update(name).digest('hex').slice(0, 6);
  return `${HOST_IFACE_PREFIX}.${name.slice(0, 4)}.${hash}`;
}

export const NS_IFACE = 'eth0';

// Interfaces nsroute owns on the host all start like this (used in nft rules and gc).
export const HOST_IFACE_GLOB = `${HOST_IFACE_PREFIX}*`;
