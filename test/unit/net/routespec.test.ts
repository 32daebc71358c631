import { describe, expect, it } from 'vitest';
import { routeSpec } from '../../../src/net/routespec.js';

// Routes as `ip -j -N route show table all dev IFACE` prints them, back as `ip route replace`
// arguments for another device (bridge takeover moves them and gives them back).
describe('routeSpec', () => {
  it('keeps destination, gateway, table, protocol, scope, metric and source', () => {
    expect(routeSpec({ dst: 'default', gateway: '10.99.3.1', protocol: 'static', metric: 100, flags: [] })).toBe('default via 10.99.3.1 proto static metric 100');
    expect(routeSpec({ dst: '198.18.0.10', gateway: '10.99.3.1', table: '7101', flags: [] })).toBe('198.18.0.10 via 10.99.3.1 table 7101');
    expect(routeSpec({ dst: '10.0.0.0/8', scope: 'link', prefsrc: '10.99.3.2', flags: [] })).toBe('10.0.0.0/8 scope link src 10.99.3.2');
  });

  it('keeps a route type other than unicast, and leaves the main table implicit', () => {
    expect(routeSpec({ type: 'blackhole', dst: '192.0.2.0/24', table: 'main', flags: [] })).toBe('blackhole 192.0.2.0/24');
    expect(routeSpec({ dst: '192.0.2.0/24', table: '254', flags: [] })).toBe('192.0.2.0/24');
  });
});
