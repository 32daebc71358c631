import { describe, expect, it } from 'vitest';
import { addrArgs, missingAfterGiveBack, moveToBridgeLines, routeLines, takenAddr, type TakenOver } from '../../../src/net/takeover.js';

// Issue #10, finding 2: `ip -4 -batch` rejects an IPv6 line fatally, so every batch of a
// takeover holds one family only, and addresses keep the flags they had.
const T: TakenOver = {
  bridge: 'nsb-ups',
  addrs: [
    { cidr: '10.99.2.2/24', family: 4, broadcast: '10.99.2.255' },
    { cidr: 'fd99:2::7/64', family: 6, flags: ['nodad', 'noprefixroute'] },
    { cidr: 'fd99:2::2/64', family: 6, flags: ['nodad'] },
  ],
  routes: [
    { family: 4, spec: '198.51.100.0/24 via 10.99.2.1 table 300' },
    { family: 6, spec: 'default via fd99:2::1 metric 2048' },
  ],
};

describe('takeover records and lines', () => {
  it('records an address with the flags ip address add takes back, and skips IPv6 link-local', () => {
    expect(takenAddr({ family: 'inet6', local: 'fd99:2::7', prefixlen: 64, scope: 'global', nodad: true, noprefixroute: true, valid_life_time: 4294967295 })).toEqual({
      cidr: 'fd99:2::7/64',
      family: 6,
      flags: ['nodad', 'noprefixroute'],
    });
    expect(takenAddr({ family: 'inet', local: '10.99.2.2', prefixlen: 24, broadcast: '10.99.2.255', scope: 'global' })).toEqual({ cidr: '10.99.2.2/24', family: 4, broadcast: '10.99.2.255' });
    expect(takenAddr({ family: 'inet6', local: 'fe80::1', prefixlen: 64, scope: 'link' })).toBeUndefined();
    expect(addrArgs(T.addrs[1]!)).toBe('fd99:2::7/64 nodad noprefixroute');
    expect(addrArgs(T.addrs[0]!)).toBe('10.99.2.2/24 broadcast 10.99.2.255');
  });

  it('keeps the families apart in every batch', () => {
    expect(moveToBridgeLines(T, 'ups', 4)).toEqual(['address del 10.99.2.2/24 dev ups', 'address add 10.99.2.2/24 broadcast 10.99.2.255 dev nsb-ups']);
    expect(moveToBridgeLines(T, 'ups', 6).every((l) => l.includes('fd99:'))).toBe(true);
    expect(routeLines(T, 4, 'ups')).toEqual(['route replace 198.51.100.0/24 via 10.99.2.1 table 300 dev ups']);
    expect(routeLines(T, 6, 'ups')).toEqual(['route replace default via fd99:2::1 metric 2048 dev ups']);
  });

  it('says what the interface did not get back', () => {
    expect(missingAfterGiveBack(T, { addrs: T.addrs, routes: T.routes })).toEqual({ addrs: [], routes: [] });
    expect(missingAfterGiveBack(T, { addrs: [T.addrs[0]!], routes: [T.routes[0]!] })).toEqual({
      addrs: ['fd99:2::7/64', 'fd99:2::2/64'],
      routes: ['default via fd99:2::1 metric 2048'],
    });
  });
});
