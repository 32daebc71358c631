import { describe, expect, it } from 'vitest';
import { parseTag, renderTag } from '../../../src/net/tag.js';

describe('owner tag', () => {
  const uplink = { via: '192.168.2.1', dev: 'wlp3s0', table: 7101, mark: 0x6e720001, pref: 4200 };

  it('round-trips with and without an uplink, gateway or persistence', () => {
    for (const t of [
      { name: 'slow', persistent: false, uplink },
      { name: 'a-very_long-Name0', persistent: true, uplink },
      { name: 'vpn', persistent: false, uplink: { dev: 'tun0', table: 7102, mark: 0x6e720002, pref: 4200 } },
      { name: 'plain', persistent: true },
      { name: 'six', persistent: false, uplink, ipv6: 'nat' as const, via6: 'fe80::1' },
      { name: 'six2', persistent: true, ipv6: 'nat' as const },
    ]) {
      expect(parseTag(renderTag(t))).toEqual(t);
    }
  });

  it('has no spaces or quotes, so it survives `ip -batch`', () => {
    expect(renderTag({ name: 'slow', persistent: false, uplink })).toBe(
      'nsroute:ns=slow:persistent=0:via=192.168.2.1:dev=wlp3s0:table=7101:mark=0x6e720001:pref=4200',
    );
  });

  it('fits the kernel limit for the longest name and device', () => {
    const long = renderTag({
      name: 'n'.repeat(64),
      persistent: true,
      uplink: { ...uplink, via: '255.255.255.255', dev: 'd'.repeat(15) },
      ipv6: 'nat',
      via6: 'ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff',
    });
    expect(long.length).toBeLessThanOrEqual(255);
  });

  it('rejects aliases that are not ours or are damaged', () => {
    for (const alias of [
      undefined,
      '',
      'uplink to the office',
      'nsroute:',
      'nsroute:ns=slow',
      'nsroute:ns=slow:persistent=2',
      'nsroute:ns=../etc:persistent=0',
      'nsroute:ns=slow:persistent=0:dev=eth0:table=x:mark=0x1:pref=1',
      'nsroute:ns=slow:persistent=0:via=not-an-ip:dev=eth0:table=1:mark=0x1:pref=1',
      'nsroute:ns=slow:persistent=0:junk',
      'nsroute:ns=slow:persistent=0:ipv6=on',
      'nsroute:ns=slow:persistent=0:ipv6=nat:via6=not-an-address',
    ]) {
      expect(parseTag(alias), String(alias)).toBeUndefined();
    }
  });
});
