import { describe, expect, it } from 'vitest';
import { parseProfileToml, resolveProfile } from '../../../src/profile/profile.js';
import { catchUserError } from '../helpers.js';

const FILE = '/etc/nsroute/slow.toml';


describe('parseProfileToml', () => {
  it('reads a full profile', () => {
    const text = ['# the slow uplink', 'via = "192.168.2.1"', 'dev = "eth1"', 'dns = ["192.168.2.1", "1.1.1.1"]', 'subnet = "10.231.5.0/30"', ''].join('\n');
    expect(parseProfileToml(text, FILE)).toEqual({ via: '192.168.2.1', dev: 'eth1', dns: ['192.168.2.1', '1.1.1.1'], subnet: '10.231.5.0/30' });
  });

  it('reads an empty file as no options', () => {
    expect(parseProfileToml('', FILE)).toEqual({});
  });

  it('accepts dns as a single string', () => {
    expect(parseProfileToml('dns = "9.9.9.9"', FILE)).toEqual({ dns: ['9.9.9.9'] });
  });

  it('names the unknown key and the file', () => {
    const e = catchUserError(() => parseProfileToml('via = "192.168.2.1"\ngateway = "192.168.2.1"\n', FILE));
    expect(e.message).toContain('"gateway"');
    expect(e.message).toContain(FILE);
    expect(e.hint).toMatch(/via.*dev.*dns.*subnet/);
  });

  it('rejects a table as an unknown key', () => {
    const e = catchUserError(() => parseProfileToml('[extra]\nx = 1\n', FILE));
    expect(e.message).toContain('"extra"');
  });

  it.each([
    ['via = 1', 'via'],
    ['dev = true', 'dev'],
    ['subnet = ["10.231.0.0/30"]', 'subnet'],
    ['via = 1979-05-27', 'via'],
    ['dns = [1, 2]', 'dns'],
    ['dns = 53', 'dns'],
    ['dns = ["1.1.1.1", 2]', 'dns'],
  ])('rejects wrong type %j, naming the key and the file', (text, key) => {
    const e = catchUserError(() => parseProfileToml(text, FILE));
    expect(e.message).toContain(FILE);
    expect(e.message).toContain(key);
  });

  it.each(['via = ', 'via = "192.168.2.1', 'via = "a"\nvia = "b"', 'dns = [', 'this is not toml'])('names the file when the TOML is invalid: %j', (text) => {
    const e = catchUserError(() => parseProfileToml(text, FILE));
    expect(e.message).toContain(FILE);
    expect(e.message).toMatch(/not valid TOML/);
    expect(e.message).not.toContain('\n');
  });
});

describe('resolveProfile', () => {
  it('returns a profile with dns [] when nothing is given', () => {
    expect(resolveProfile('slow', undefined, {})).toEqual({ name: 'slow', dns: [] });
  });

  it('lets flags override file values key by key', () => {
    const p = resolveProfile('slow', { via: '192.168.2.1', dev: 'eth1', dns: ['1.1.1.1'], subnet: '10.231.5.0/30' }, { via: '192.168.3.1', dev: 'eth2' }, FILE);
    expect(p).toEqual({ name: 'slow', via: '192.168.3.1', dev: 'eth2', dns: ['1.1.1.1'], subnet: '10.231.5.0/30' });
    expect(resolveProfile('slow', { dns: ['1.1.1.1'] }, { dns: ['9.9.9.9', '8.8.8.8'] }, FILE).dns).toEqual(['9.9.9.9', '8.8.8.8']);
  });

  it('keeps the file\'s dns when the flag list is empty', () => {
    expect(resolveProfile('slow', { dns: ['1.1.1.1'] }, { dns: [] }, FILE).dns).toEqual(['1.1.1.1']);
  });

  it('names --via for a bad flag value, even when a file exists', () => {
    const e = catchUserError(() => resolveProfile('slow', { via: '192.168.2.1' }, { via: 'junk' }, FILE));
    expect(e.message).toContain('--via');
    expect(e.message).not.toContain(FILE);
  });

  it('names "via in FILE" for a bad file value', () => {
    const e = catchUserError(() => resolveProfile('slow', { via: 'gateway.lan' }, {}, FILE));
    expect(e.message).toContain(`via in ${FILE}`);
  });

  it.each([
    ['dns', { dns: ['1.1.1.1', 'fd00::1'] }],
    ['subnet', { subnet: '10.231.0.1/30' }],
    ['dev', { dev: 'eth 1', via: '192.168.2.1' }],
  ])('names "%s in FILE" for a bad file value', (key, fromFile) => {
    const e = catchUserError(() => resolveProfile('slow', fromFile, {}, FILE));
    expect(e.message).toContain(`${key} in ${FILE}`);
  });

  it('names --dns / --subnet / --dev for bad flags', () => {
    expect(catchUserError(() => resolveProfile('slow', undefined, { dns: ['9.9.9.9', 'junk'] })).message).toContain('--dns');
    expect(catchUserError(() => resolveProfile('slow', undefined, { subnet: '10.231.0.0/33' })).message).toContain('--subnet');
    expect(catchUserError(() => resolveProfile('slow', undefined, { via: '192.168.2.1', dev: 'a/b' })).message).toContain('--dev');
    expect(catchUserError(() => resolveProfile('slow', undefined, { via: '192.168.2.1', dev: 'a'.repeat(16) })).message).toContain('--dev');
  });

  it('rejects a /32 subnet (no room for two link addresses), accepts /31 and /30', () => {
    const e = catchUserError(() => resolveProfile('slow', undefined, { subnet: '10.231.0.1/32' }));
    expect(e.message).toContain('--subnet');
    expect(e.message).toContain('/32');
    expect(resolveProfile('slow', undefined, { subnet: '10.231.0.0/31' }).subnet).toBe('10.231.0.0/31');
    expect(resolveProfile('slow', undefined, { subnet: '10.231.0.4/30' }).subnet).toBe('10.231.0.4/30');
  });

  it('rejects a subnet with host bits, hinting the network', () => {
    const e = catchUserError(() => resolveProfile('slow', undefined, { subnet: '10.231.0.5/30' }));
    expect(e.hint).toContain('10.231.0.4/30');
  });

  it.each(['', 'a.b', '../x', '-x', 'a'.repeat(65)])('rejects the invalid name %j', (name) => {
    catchUserError(() => resolveProfile(name, undefined, {}));
  });

  it('accepts --dev without --via (a point-to-point uplink such as tun0)', () => {
    expect(resolveProfile('office', undefined, { dev: 'tun0' })).toEqual({ name: 'office', dev: 'tun0', dns: [] });
    expect(resolveProfile('office', { dev: 'tun0' }, {}, FILE)).toEqual({ name: 'office', dev: 'tun0', dns: [] });
  });
});

describe('ipv6 and via6', () => {
  it('takes ipv6 = "nat" and via6 from the profile, flags winning', () => {
    const file = parseProfileToml('via = "10.0.0.1"\nipv6 = "nat"\nvia6 = "fd00::1"\n', 'p.toml');
    expect(resolveProfile('slow', file, {}, 'p.toml')).toMatchObject({ ipv6: 'nat', via6: 'fd00::1' });
    const noVia6 = parseProfileToml('via = "10.0.0.1"\nipv6 = "nat"\n', 'p.toml');
    expect(resolveProfile('slow', noVia6, { ipv6: 'off' }, 'p.toml').ipv6).toBe('off');
    // A via6 left in the profile while the flag turns IPv6 off is a contradiction, said so.
    expect(catchUserError(() => resolveProfile('slow', file, { ipv6: 'off' }, 'p.toml')).message).toBe('via6 in p.toml only applies to IPv6 in nat mode');
  });

  it('names the problem and the fix for bad values', () => {
    expect(catchUserError(() => resolveProfile('slow', undefined, { ipv6: 'yes' })).message).toBe('--ipv6: "yes" is not an IPv6 mode');
    expect(catchUserError(() => resolveProfile('slow', undefined, { via: '10.0.0.1', ipv6: 'nat', via6: '10.0.0.1' })).message).toMatch(/--via6: "10.0.0.1" is not an IPv6 address/);
    expect(catchUserError(() => resolveProfile('slow', undefined, { via: '10.0.0.1', via6: 'fd00::1' })).hint).toContain('--ipv6 nat');
    expect(catchUserError(() => resolveProfile('slow', undefined, { ipv6: 'nat', via6: 'fd00::1' })).hint).toContain('--via');
  });
});

describe('mode, bridge, uplink, address, dhcp', () => {
  it('takes them from flags and the profile', () => {
    expect(resolveProfile('lan', parseProfileToml('mode = "macvlan"\nuplink = "eth0"\ndhcp = true\n', 'p.toml'), {}, 'p.toml')).toMatchObject({ mode: 'macvlan', uplink: 'eth0', dhcp: true });
    expect(resolveProfile('lan', undefined, { mode: 'bridge', bridge: 'br0', address: '10.0.0.5/24', via: '10.0.0.1' })).toMatchObject({ mode: 'bridge', bridge: 'br0', address: '10.0.0.5/24', via: '10.0.0.1' });
  });

  it('refuses keys of another mode and incomplete addressing, with the fix', () => {
    const cases: [object, RegExp][] = [
      [{ bridge: 'br0' }, /--bridge applies to --mode bridge or macvlan/],
      [{ mode: 'bridged' }, /"bridged" is not a mode/],
      [{ mode: 'bridge', address: '10.0.0.5/24', via: '10.0.0.1' }, /either --bridge BR .* or --uplink IFACE/],
      [{ mode: 'bridge', bridge: 'br0', uplink: 'eth0', dhcp: true }, /either --bridge/],
      [{ mode: 'macvlan', dhcp: true }, /--mode macvlan needs --uplink/],
      [{ mode: 'macvlan', uplink: 'eth0' }, /needs the namespace's own address/],
      [{ mode: 'macvlan', uplink: 'eth0', address: '10.0.0.5/24' }, /needs --via/],
      [{ mode: 'macvlan', uplink: 'eth0', address: '10.0.0.5', via: '10.0.0.1' }, /needs the LAN's prefix length/],
      [{ mode: 'macvlan', uplink: 'eth0', address: '10.0.0.5/24', via: '10.9.0.1' }, /not on the LAN/],
      [{ mode: 'macvlan', uplink: 'eth0', address: '10.0.0.5/24', via: '10.0.0.1', dhcp: true }, /exclude each other/],
      [{ mode: 'macvlan', uplink: 'eth0', dhcp: true, subnet: '10.1.0.0/30' }, /--subnet applies to --mode nat only/],
    ];
    for (const [flags, msg] of cases) expect(catchUserError(() => resolveProfile('lan', undefined, flags)).message, JSON.stringify(flags)).toMatch(msg);
    expect(catchUserError(() => parseProfileToml('dhcp = "yes"\n', 'p.toml')).message).toBe('profile p.toml: dhcp must be true or false');
  });
});

// Issue 10, finding 7: values the kernel rejects or that cannot work are refused here, before
// any lookup or change, naming the option.
describe('addresses that cannot work', () => {
  it.each([
    ['via', '0.0.0.0', /"this network"/],
    ['via', '0.1.2.3', /"this network"/],
    ['via', '127.0.0.1', /loopback/],
    ['via', '224.0.0.1', /multicast/],
    ['via', '239.255.255.250', /multicast/],
    ['via', '240.0.0.1', /reserved/],
    ['via', '255.255.255.255', /broadcast/],
    ['dns', '127.0.0.1', /loopback/],
    ['dns', '127.0.0.53', /loopback/],
    ['dns', '0.0.0.0', /"this network"/],
    ['dns', '255.255.255.255', /broadcast/],
    ['dns', '224.0.0.251', /multicast/],
  ])('refuses --%s %s', (key, value, says) => {
    const flags = key === 'dns' ? { dns: [value] } : { via: value };
    const e = catchUserError(() => resolveProfile('slow', undefined, flags));
    expect(e.message).toContain(`--${key}`);
    expect(e.message).toMatch(says);
    // And from a profile file: the key and the file are named.
    const f = catchUserError(() => resolveProfile('slow', flags, {}, FILE));
    expect(f.message).toContain(`${key} in ${FILE}`);
  });

  it('accepts link-local gateways and name servers (cloud metadata DNS, overlay routers)', () => {
    expect(resolveProfile('slow', undefined, { via: '169.254.1.1', dns: ['169.254.169.253'] })).toMatchObject({ via: '169.254.1.1', dns: ['169.254.169.253'] });
  });

  it.each([
    ['224.0.0.0/30', /multicast/],
    ['239.1.2.0/24', /multicast/],
    ['0.0.0.0/30', /"this network"/],
    ['255.255.255.252/30', /broadcast/],
    ['240.0.0.0/30', /reserved/],
    ['127.0.0.0/30', /loopback/],
    ['169.254.0.0/30', /link-local/],
    ['0.0.0.0/1', /"this network"/],
  ])('refuses --subnet %s', (subnet, says) => {
    const e = catchUserError(() => resolveProfile('slow', undefined, { subnet }));
    expect(e.message).toContain('--subnet');
    expect(e.message).toMatch(says);
  });

  it.each(['::', '::1', 'ff02::1', '::ffff:10.0.0.1'])('refuses --via6 %s', (via6) => {
    const e = catchUserError(() => resolveProfile('slow', undefined, { via: '192.168.2.1', ipv6: 'nat', via6 }));
    expect(e.message).toContain('--via6');
  });

  it.each([
    [{ address: '192.168.1.0/24', via: '192.168.1.1' }, /--address.*network address of 192\.168\.1\.0\/24/],
    [{ address: '192.168.1.255/24', via: '192.168.1.1' }, /--address.*broadcast address/],
    [{ address: '192.168.1.50/24', via: '192.168.1.255' }, /--via.*broadcast address/],
    [{ address: '192.168.1.50/24', via: '192.168.1.0' }, /--via.*network address/],
    [{ address: '127.0.0.5/8', via: '127.0.0.1' }, /loopback/],
    [{ address: '224.0.0.5/24', via: '224.0.0.1' }, /multicast/],
  ])('refuses LAN addresses that cannot be a host: %j', (flags, says) => {
    for (const mode of ['bridge', 'macvlan']) {
      const e = catchUserError(() => resolveProfile('slow', undefined, { mode, uplink: 'eth0', ...flags }));
      expect(e.message).toMatch(says);
    }
  });

  it('accepts the first and last host of a LAN', () => {
    expect(resolveProfile('slow', undefined, { mode: 'macvlan', uplink: 'eth0', address: '192.168.1.254/24', via: '192.168.1.1' }).address).toBe('192.168.1.254/24');
    expect(resolveProfile('slow', undefined, { mode: 'macvlan', uplink: 'eth0', address: '192.168.1.1/24', via: '192.168.1.254' }).address).toBe('192.168.1.1/24');
  });
});

describe('dns list length', () => {
  it('refuses more than 3 name servers (glibc asks at most 3), from flags and from a file', () => {
    const four = ['1.1.1.1', '8.8.8.8', '9.9.9.9', '1.0.0.1'];
    expect(catchUserError(() => resolveProfile('slow', undefined, { dns: four })).message).toMatch(/--dns.*at most 3/);
    expect(catchUserError(() => resolveProfile('slow', { dns: four }, {}, FILE)).message).toContain(`dns in ${FILE}`);
    expect(resolveProfile('slow', undefined, { dns: four.slice(0, 3) }).dns).toEqual(four.slice(0, 3));
  });
});

// Pins (they passed before too): TOML corners that must stay errors naming the file.
describe('TOML corner cases', () => {
  it.each([
    ['a key given twice, once quoted', 'via = "1.2.3.4"\n"via" = "1.2.3.5"\n'],
    ['dns given twice', 'dns = ["1.1.1.1"]\ndns = []\n'],
    ['__proto__ as a key', '__proto__ = "x"\n'],
    ['__proto__ as a table', '[__proto__]\nvia = "1.2.3.4"\n'],
    ['a dotted key', 'via.x = "1.2.3.4"\n'],
    ['a nested list in dns', 'dns = ["1.1.1.1", ["8.8.8.8"]]\n'],
    ['an inline table', 'via = { a = "1.2.3.4" }\n'],
  ])('refuses %s', (_what, text) => {
    expect(catchUserError(() => parseProfileToml(text, FILE)).message).toContain(FILE);
  });
});
