import { UserError } from '../errors.js';
import { parseProfileToml, resolveProfile, type Profile, type RouteOptions } from '../profile/profile.js';
import { validateName } from '../net/names.js';
import { paths } from '../state/paths.js';
import { readTrustedText } from '../sys/trusted-file.js';
import { requireNetworkCaps } from '../sys/caps.js';

// Profile file + flags -> validated Profile. A missing profile is fine; an unreadable,
// untrusted (not root's, writable by others, not a regular file) or invalid one is an error
// naming the file: never "no profile", which would put the namespace on the host's routes.
export function loadProfile(name: string, flags: RouteOptions, opts: { required?: boolean } = {}): Profile {
  validateName(name);
  const file = paths.profile(name);
  const text = readTrustedText(file, 'profile');
  // The systemd unit: a profile gone (removed, or its filesystem not mounted yet) must not
  // bring NAME up on the host's own routes, with its services started into it.
  if (text === undefined && opts.required) {
    throw new UserError(`profile ${file} does not exist, and ${name} is only brought up from it`, `restore it, or \`nsroute disable ${name}\``);
  }
  const fromFile = text === undefined ? undefined : parseProfileToml(text, file);
  return resolveProfile(name, fromFile, {
      via: flags.via,
      dev: flags.dev,
      dns: flags.dns,
      subnet: flags.subnet,
      ipv6: flags.ipv6,
      via6: flags.via6,
      mode: flags.mode,
      bridge: flags.bridge,
      uplink: flags.uplink,
      address: flags.address,
      dhcp: flags.dhcp,
      publish: flags.publish,
      rateDown: flags.rateDown,
      rateUp: flags.rateUp,
    }, text === undefined ? undefined : file);
}

// network: false for the commands that only write files and run systemctl (enable, attach...).
export function requireRoot(opts: { network?: boolean } = {}): void {
  if (typeof process.geteuid === 'function' && process.geteuid() !== 0) {
    throw new UserError('nsroute needs root to create network namespaces', 'run it with sudo; commands still run as you');
  }
  if (opts.network !== false) requireNetworkCaps();
}
