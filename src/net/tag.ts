import { validateName } from './names.js';
import { isIPv4, isIPv6 } from './addresses.js';
import type { Uplink } from '../plan/types.js';

// The owner tag nsroute puts on the host end of every veth it creates (the interface alias,
// `ip link set dev X alias TAG`). It makes the kernel object self-describing: if the run dir
// is lost, gc finds its namespaces by this tag in the host's own network namespace and can
// rebuild their records, and never mistakes someone else's interface for one of ours.
// Format: `nsroute:ns=NAME:persistent=0|1[:via=IPv4]:dev=DEV:table=N:mark=0xN:pref=N`
// `[:ipv6=nat[:via6=ADDR]]`, with the ':' of an IPv6 address written as '-'.
// No spaces or quotes (it goes through `ip -batch`); interface names cannot contain ':'.
export const TAG_PREFIX = 'nsroute:';
const IFALIAS_MAX = 255;

export interface Tag {
  name: string;
  persistent: boolean;
  uplink?: Uplink;
  ipv6?: 'nat';
  via6?: string;
}

export function renderTag(t: Tag): string {
  const parts = [`ns=${t.name}`, `persistent=${t.persistent ? 1 : 0}`];
  const u = t.uplink;
  if (u) {
    if (u.via) parts.push(`via=${u.via}`);
    parts.push(`dev=${u.dev}`, `table=${u.table}`, `mark=0x${u.mark.toString(16)}`, `pref=${u.pref}`);
  }
  if (t.ipv6 === 'nat') parts.push('ipv6=nat');
  if (t.via6) parts.push(`via6=${t.via6.replace(/:/g, '-')}`);
  const tag = TAG_PREFIX + parts.join(':');
  if (tag.length > IFALIAS_MAX) throw new Error(`owner tag longer than ${IFALIAS_MAX} bytes: ${tag}`);
  return tag;
}

// undefined for anything that is not a well-formed tag of ours.
export function parseTag(alias: string | undefined): Tag | undefined {
  if (!alias?.startsWith(TAG_PREFIX)) return undefined;
  const fields = new Map<string, string>();
  for (const part of alias.slice(TAG_PREFIX.length).split(':')) {
    const eq = part.indexOf('=');
    if (eq <= 0) return undefined;
    fields.set(part.slice(0, eq), part.slice(eq + 1));
  }
  const name = fields.get('ns');
  const persistent = fields.get('persistent');
  if (!name || (persistent !== '0' && persistent !== '1')) return undefined;
  try {
    validateName(name);
  } catch {
    return undefined;
  }
  const tag: Tag = { name, persistent: persistent === '1' };
  const dev = fields.get('dev');
  if (dev !== undefined) {
    const via = fields.get('via');
    const table = Number(fields.get('table'));
    const mark = Number(fields.get('mark'));
    const pref = Number(fields.get('pref'));
    if (!dev || (via !== undefined && !isIPv4(via)) || ![table, mark, pref].every((n) => Number.isInteger(n) && n > 0)) return undefined;
    tag.uplink = { ...(via !== undefined ? { via } : {}), dev, table, mark, pref };
  }
  const ipv6 = fields.get('ipv6');
  if (ipv6 !== undefined) {
    if (ipv6 !== 'nat') return undefined;
    tag.ipv6 = 'nat';
  }
  const via6 = fields.get('via6');
  if (via6 !== undefined) {
    const addr = via6.replace(/-/g, ':');
    if (!isIPv6(addr)) return undefined;
    tag.via6 = addr;
  }
  return tag;
}
