import { describe, expect, it } from 'vitest';
import { UserError } from '../../../src/errors.js';
import { checkPublishList, parsePublish, publishClash, publishedIn, publishSpec, renderPublishAdd, renderPublishDelete, renderPublishObjects } from '../../../src/net/publish.js';
import { listenerFor, parseListeners } from '../../../src/net/listeners.js';
import { burstBytes, parseRate, tbfArgs } from '../../../src/net/rate.js';
import { renderNftRuleset } from '../../../src/net/nft.js';
import { parseProfileToml, resolveProfile } from '../../../src/profile/profile.js';

describe('parsePublish', () => {
  it('reads [HOSTADDR:]HOSTPORT:PORT[/proto], tcp by default', () => {
    expect(parsePublish('8080:80', 'x')).toEqual({ hostPort: 8080, port: 80, proto: 'tcp' });
    expect(parsePublish('51413:51413/udp', 'x')).toEqual({ hostPort: 51413, port: 51413, proto: 'udp' });
    expect(parsePublish('192.168.1.5:2222:22/tcp', 'x')).toEqual({ hostAddr: '192.168.1.5', hostPort: 2222, port: 22, proto: 'tcp' });
    expect(parsePublish('127.0.0.1:9091:9091', 'x').hostAddr).toBe('127.0.0.1');
  });
  it.each(['80', '0:80', '8080:65536', '8080:80/sctp', 'a:b', '1.2.3:80:80', '224.0.0.1:80:80', '8080:80:80:80', ' 8080:80', '8080:+80'])('refuses %j', (spec) => {
    expect(() => parsePublish(spec, '--publish')).toThrow(UserError);
  });
  it('round-trips through publishSpec', () => {
    for (const s of ['8080:80/tcp', '10.0.0.1:53:53/udp']) expect(publishSpec(parsePublish(s, 'x'))).toBe(s);
  });
  it('clashes: same proto and host port, an address in common', () => {
    const p = (s: string) => parsePublish(s, 'x');
    expect(publishClash(p('8080:80'), p('8080:81'))).toBe(true);
    expect(publishClash(p('1.2.3.4:8080:80'), p('8080:81'))).toBe(true);
    expect(publishClash(p('1.2.3.4:8080:80'), p('1.2.3.5:8080:81'))).toBe(false);
    expect(publishClash(p('8080:80/udp'), p('8080:80'))).toBe(false);
    expect(() => checkPublishList([p('8080:80'), p('8080:81')], '--publish')).toThrow(/take the same port/);
  });
});

describe('publish objects', () => {
  const m = { nsAddress: '10.231.0.2', ports: [parsePublish('8080:80', 'x'), parsePublish('10.99.2.2:53:53/udp', 'x')], uplink: { dev: 'eth1', mark: 0x6e720001 } };
  it('one map element per port, and DNAT only to the host itself, in lookups not rules per port', () => {
    const text = renderPublishObjects([m]);
    expect(text).toContain('map publish_any { type inet_proto . inet_service : ipv4_addr . inet_service; elements = { tcp . 8080 : 10.231.0.2 . 80 }; }');
    expect(text).toContain('elements = { 10.99.2.2 . udp . 53 : 10.231.0.2 . 53 }');
    expect(text).toContain('elements = { "eth1" . 10.231.0.2 : 0x6e720001 }');
    for (const line of text.split('\n').filter((l) => l.includes('dnat ip to'))) expect(line).toMatch(/fib daddr type local dnat ip to .* map @publish_(any|addr)$/);
    expect(text).not.toMatch(/dport 8080/);
  });
  it('adds and deletes exactly its elements (delete by key)', () => {
    expect(renderPublishAdd(m)).toBe(
      'add element inet nsroute publish_any { tcp . 8080 : 10.231.0.2 . 80 }\nadd element inet nsroute publish_addr { 10.99.2.2 . udp . 53 : 10.231.0.2 . 53 }\nadd element inet nsroute publish_reply_mark { "eth1" . 10.231.0.2 : 0x6e720001 }\n',
    );
    expect(renderPublishDelete(m)).toBe(
      'delete element inet nsroute publish_any { tcp . 8080 }\ndelete element inet nsroute publish_addr { 10.99.2.2 . udp . 53 }\ndelete element inet nsroute publish_reply_mark { "eth1" . 10.231.0.2 }\n',
    );
  });
  it('the whole table carries the (empty) publish objects, so elements can always be added', () => {
    const t = renderNftRuleset([{ iface: 'nsr-a', subnet: '10.231.0.0/30' }]);
    expect(t).toContain('map publish_any { type inet_proto . inet_service : ipv4_addr . inet_service; }');
    expect(t).toContain('chain publish_guard');
  });
  it('reads ports back from `nft -j` (gc after a lost run dir)', () => {
    const json = {
      nftables: [
        { map: { family: 'inet', table: 'nsroute', name: 'publish_any', elem: [[{ concat: ['tcp', 8080] }, { concat: ['10.231.0.2', 80] }], [{ concat: ['tcp', 9] }, { concat: ['10.231.0.6', 9] }]] } },
        { map: { family: 'inet', table: 'nsroute', name: 'publish_addr', elem: [[{ concat: ['10.99.2.2', 'udp', 53] }, { concat: ['10.231.0.2', 53] }]] } },
      ],
    };
    expect(publishedIn(json, '10.231.0.2')).toEqual([
      { hostAddr: '10.99.2.2', hostPort: 53, port: 53, proto: 'udp' },
      { hostPort: 8080, port: 80, proto: 'tcp' },
    ]);
  });
});

describe('host listeners', () => {
  const ss = [
    'tcp   LISTEN 0      4096         0.0.0.0:22        0.0.0.0:*    users:(("sshd",pid=812,fd=3))',
    'tcp   LISTEN 0      4096   127.0.0.53%lo:53        0.0.0.0:*    users:(("systemd-resolve",pid=500,fd=14))',
    'udp   UNCONN 0      0          10.0.0.5:5353       0.0.0.0:*',
    'tcp   LISTEN 0      511            [::]:80            [::]:*    users:(("nginx",pid=9,fd=6))',
  ].join('\n');
  const l = parseListeners(ss);
  it('parses ss -H -l -n -p -t -u', () => {
    expect(l).toEqual([
      { proto: 'tcp', addr: '*', port: 22, process: '"sshd",pid=812' },
      { proto: 'tcp', addr: '127.0.0.53', port: 53, process: '"systemd-resolve",pid=500' },
      { proto: 'udp', addr: '10.0.0.5', port: 5353 },
      { proto: 'tcp', addr: '*', port: 80, process: '"nginx",pid=9' },
    ]);
  });
  it('a published port clashes with a listener on any address it takes', () => {
    const p = (s: string) => parsePublish(s, 'x');
    expect(listenerFor(p('2222:22'), l)).toBeUndefined();
    expect(listenerFor(p('22:22'), l)?.process).toContain('sshd');
    expect(listenerFor(p('53:53'), l)?.addr).toBe('127.0.0.53');
    expect(listenerFor(p('10.0.0.9:53:53'), l)).toBeUndefined();
    expect(listenerFor(p('5353:53/udp'), l)?.proto).toBe('udp');
    expect(listenerFor(p('10.0.0.7:80:80'), l)?.process).toContain('nginx');
  });
});

describe('rates', () => {
  it("reads tc's rate syntax as bits per second", () => {
    expect(parseRate('20mbit', 'x')).toBe('20000000bit');
    expect(parseRate('1.5Gbit', 'x')).toBe('1500000000bit');
    expect(parseRate('2mbps', 'x')).toBe('16000000bit');
    expect(parseRate('512kibit', 'x')).toBe('524288bit');
    expect(parseRate('100000', 'x')).toBe('100000bit');
  });
  it.each(['', 'fast', '20 mbit', '20mbits', '-1mbit', '1bit', '2tbit', '1e6bit'])('refuses %j', (r) => {
    expect(() => parseRate(r, '--rate-down')).toThrow(UserError);
  });
  it('a bucket of 20 ms at the rate, at least 16 KiB', () => {
    expect(burstBytes('8000000bit')).toBe(20000 > 16384 ? 20000 : 16384);
    expect(burstBytes('1000000bit')).toBe(16384);
    expect(tbfArgs('nsr-a', '8000000bit')).toEqual(['qdisc', 'replace', 'dev', 'nsr-a', 'root', 'tbf', 'rate', '8000000bit', 'burst', '20000', 'latency', '100ms']);
  });
});

describe('profile keys', () => {
  it('publish, rate_down, rate_up; flags win', () => {
    const file = parseProfileToml('publish = ["8080:80", "51413:51413/udp"]\nrate_down = "20mbit"\nrate_up = "5mbit"\n', 'p.toml');
    const p = resolveProfile('n', file, {}, 'p.toml');
    expect(p.publish).toHaveLength(2);
    expect([p.rateDown, p.rateUp]).toEqual(['20000000bit', '5000000bit']);
    expect(resolveProfile('n', file, { publish: ['1:2'], rateUp: '1mbit' }, 'p.toml')).toMatchObject({ publish: [{ hostPort: 1, port: 2 }], rateUp: '1000000bit', rateDown: '20000000bit' });
  });
  it('refuses publish outside nat mode and caps on a macvlan, naming the key', () => {
    expect(() => resolveProfile('n', { mode: 'bridge', bridge: 'br0', dhcp: true, publish: ['80:80'] }, {}, 'p.toml')).toThrow(/publish in p.toml applies to --mode nat/);
    expect(() => resolveProfile('n', undefined, { mode: 'macvlan', uplink: 'eth0', dhcp: true, rateDown: '1mbit' })).toThrow(/--rate-down applies to --mode nat and bridge/);
    expect(() => parseProfileToml('publish = 8080\n', 'p.toml')).toThrow(/publish must be a list/);
  });
});
