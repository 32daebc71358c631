import IPCIDR from 'ip-cidr';
import { checkCidr4, notACidr4, type Cidr4 } from './addresses.js';

// ip-cidr, the design card's library for address math, validates the blocks the planner works
// with (--subnet, the pools). In a module of its own, loaded with the planner: the commands
// that do not plan (list, status, a hot exec) do not load its 129 KB (ip-address, jsbn).

// ip-cidr validates a block with jsbn BigIntegers (~0.1-0.3 ms a call), and planning parses
// the same few blocks (every NAME's subnet, the pools) again and again: about 11 ms of CPU per
// cold exec, under the host lock, and more with every NAME up. A block parsed once is
// remembered by its text (a failure is not: its message names the caller).
const parsedCidr4 = new Map<string, Cidr4>();

export function parseCidr4(text: string, what: string): Cidr4 {
  const known = parsedCidr4.get(text);
  if (known) return { ...known };
  // ip-cidr's verdict, then the uint32 checks a profile's subnet gets too (the prefix, the host
  // bits, and the network the hint names).
  if (!IPCIDR.isValidCIDR(text)) throw notACidr4(text, what);
  const parsed = checkCidr4(text, what);
  parsedCidr4.set(text, parsed);
  return { ...parsed };
}
