import { describe, expect, it } from 'vitest';
import { dhcpScript } from '../../../src/net/dhcp.js';

describe('dhcpScript', () => {
  it('sets the lease address and router, and writes the lease DNS in place only when asked', () => {
    const withDns = dhcpScript('lan', true);
    expect(withDns.startsWith('#!/bin/sh\n# Written by nsroute')).toBe(true);
    expect(withDns).toContain('ip addr add "$ip/${mask:-24}"');
    expect(withDns).toContain('ip route replace default via "$1" dev "$interface"');
    // In place (cat >), so the file stays the one bind-mounted into running commands.
    expect(withDns).toContain('cat /etc/netns/lan/resolv.conf.new > /etc/netns/lan/resolv.conf');
    expect(withDns).toContain('# Written by nsroute for namespace lan; from the DHCP lease');
    expect(dhcpScript('lan', false)).not.toContain('resolv.conf');
  });
});
