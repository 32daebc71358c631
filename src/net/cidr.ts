import IPCIDR from 'ip-cidr';
import { UserError } from '../errors.js';
import { ipToInt, isIPv4, type Cidr4 } from './addresses.js';

// ip-cidr, the design card's library for address math, validates the blocks the planner works
// with (--subnet, the pools). In a module of its own, loaded with the planner: the commands
// that do not plan (list, status, a hot exec) do not load its 129 KB (ip-address, jsbn).

// ip-cidr validates a block and finds its start with jsbn BigIntegers (~0.1-0.3 ms a call),
// and planning parses the same few blocks (every NAME's subnet, the pools) again and again:
// about 11 ms of CPU per cold exec, under the host lock, and more with every NAME up. A block
// parsed once is remembered by its text (a failure is not: its message names the caller).
const parsedCidr4 = new Map<string, Cidr4>();

export function parseCidr4(text: string, what: string): Cidr4 {
  const known = parsedCidr4.get(text);
  if (known) return { ...known };
  const parsed = parseCidr4Uncached(text, what);
  parsedCidr4.set(text, parsed);
  return { ...parsed };
}

function parseCidr4Uncached(text: string, what: string): Cidr4 {
  const [addr, prefixText] = text.split('/');
  if (prefixText === undefined || !isIPv4(addr ?? '') || !/^\d{1,2}$/.test(prefixText) || !IPCIDR.isValidCIDR(text)) {
    throw new UserError(`${what}: ${JSON.stringify(text)} is not an IPv4 CIDR block`, 'write it as ADDRESS/PREFIX, e.g. 10.231.0.0/30');
  }
  const prefix = Number(prefixText);
  if (prefix > 32) {
    throw new UserError(`${what}: prefix /${prefix} is longer than 32 bits`, 'use a prefix between /0 and /32');
  }
  const start = new IPCIDR(text).start() as string;
  const network = ipToInt(start);
  if (network !== ipToInt(addr!)) {
    throw new UserError(`${what}: ${text} has host bits set`, `did you mean ${start}/${prefix}?`);
  }
  return { network, prefix };
}

