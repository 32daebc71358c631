import { parse as parseToml } from 'smol-toml';
import { UserError } from '../errors.js';
import { parseCidr4, parseIPv4, parseIPv6, cidrToString } from '../net/addresses.js';
import { validateName } from '../net/names.js';

// What the user asked for, from /etc/nsroute/NAME.toml and the command line (flags win).
export interface RouteOptions {
  via?: string;
  dev?: string;
  dns?: string[];
  subnet?: string;
  ipv6?: string;
  via6?: string;
}

export type Ipv6Mode = 'off' | 'nat';
export const IPV6_MODES: readonly Ipv6Mode[] = ['off', 'nat'];

// A validated request: every address parsed, nothing looked up on the host yet.
export interface Profile {
  name: string;
  via?: string;
  dev?: string;
  dns: string[];
  subnet?: string;
  ipv6?: Ipv6Mode; // undefined: not asked for (off, or whatever a running namespace has)
  via6?: string;
}

const KEYS = ['via', 'dev', 'dns', 'subnet', 'ipv6', 'via6'] as const;
const IFACE_RE = /^[^\s/:]{1,15}$/;

// Parses a profile file's text. `file` is only used to name the file in errors.
export function parseProfileToml(text: string, file: string): RouteOptions {
  let doc: Record<string, unknown>;
  try {
    doc = parseToml(text) as Record<string, unknown>;
  } catch (e) {
    const first = (e as Error).message.split('\n')[0];
    throw new UserError(`profile ${file} is not valid TOML: ${first}`, `fix the file (keys: ${KEYS.join(', ')})`);
  }
  const out: RouteOptions = {};
  for (const [key, value] of Object.entries(doc)) {
    if (!(KEYS as readonly string[]).includes(key)) {
      throw new UserError(`profile ${file}: unknown key ${JSON.stringify(key)}`, `the keys are ${KEYS.join(', ')}`);
    }
    if (key === 'dns') {
      const list = typeof value === 'string' ? [value] : value;
      if (!Array.isArray(list) || !list.every((v) => typeof v === 'string')) {
        throw new UserError(`profile ${file}: dns must be a list of addresses`, 'write e.g. dns = ["192.168.2.1"]');
      }
      out.dns = list as string[];
    } else {
      if (typeof value !== 'string') {
        throw new UserError(`profile ${file}: ${key} must be a string`, `write e.g. ${key} = "..."`);
      }
      out[key as 'via' | 'dev' | 'subnet' | 'ipv6' | 'via6'] = value;
    }
  }
  return out;
}

// Flags override the profile key by key; everything is validated here, before any lookup
// on the host, so bad input never gets as far as a change.
export function resolveProfile(name: string, fromFile: RouteOptions | undefined, flags: RouteOptions, file?: string): Profile {
  validateName(name);
  const where = (key: string) => (flags[key as keyof RouteOptions] !== undefined || !file ? `--${key}` : `${key} in ${file}`);
  const merged: RouteOptions = { ...fromFile };
  for (const key of KEYS) if (flags[key] !== undefined && !(key === 'dns' && flags.dns!.length === 0)) (merged as Record<string, unknown>)[key] = flags[key];

  const profile: Profile = { name, dns: [] };
  if (merged.via !== undefined) profile.via = parseIPv4(merged.via, where('via'));
  if (merged.dev !== undefined) {
    if (!IFACE_RE.test(merged.dev)) {
      throw new UserError(`${where('dev')}: ${JSON.stringify(merged.dev)} is not an interface name`, '`ip link` lists interfaces');
    }
    profile.dev = merged.dev;
  }
  for (const server of merged.dns ?? []) profile.dns.push(parseIPv4(server, where('dns')));
  if (merged.subnet !== undefined) {
    const subnet = parseCidr4(merged.subnet, where('subnet'));
    if (subnet.prefix > 31) {
      throw new UserError(`${where('subnet')}: /${subnet.prefix} leaves no room for two link addresses`, 'use a /31, a /30 or a larger block');
    }
    profile.subnet = cidrToString(subnet);
  }
  if (merged.ipv6 !== undefined) {
    if (!(IPV6_MODES as readonly string[]).includes(merged.ipv6)) {
      throw new UserError(`${where('ipv6')}: ${JSON.stringify(merged.ipv6)} is not an IPv6 mode`, `use one of ${IPV6_MODES.join(', ')}`);
    }
    profile.ipv6 = merged.ipv6 as Ipv6Mode;
  }
  if (merged.via6 !== undefined) {
    profile.via6 = parseIPv6(merged.via6, where('via6'));
    if (profile.ipv6 !== 'nat') throw new UserError(`${where('via6')} only applies to IPv6 in nat mode`, 'add --ipv6 nat, or leave --via6 out');
    if (!profile.via && !profile.dev) throw new UserError(`${where('via6')} needs an uplink`, 'add --via GATEWAY (or --dev IFACE) for the same link');
  }
  return profile;
}
