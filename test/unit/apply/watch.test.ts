import { describe, expect, it } from 'vitest';
import { eventSubject, relevantEvent } from '../../../src/apply/watch.js';

// Lines as `ip monitor link address route rule` prints them (iproute2 6.1).
const devs = new Set(['ups']);
const tables = new Set([7101]);

describe('relevantEvent', () => {
  it('reacts to the uplink changing state, getting an address, and to our routes and rules going', () => {
    for (const line of [
      '3: ups@if2: <BROADCAST,MULTICAST,UP,LOWER_UP> mtu 1500 qdisc noqueue state UP group default ',
      '3: ups: <BROADCAST,MULTICAST> mtu 1500 qdisc noqueue state DOWN group default ',
      '3: ups    inet 10.99.2.7/24 scope global ups',
      'Deleted 4200:\tfrom all fwmark 0x6e720001 lookup 7101',
      'Deleted default via 10.99.2.1 dev ups table 7101 ',
    ]) {
      expect(relevantEvent(line, devs, tables), line).toBe(true);
    }
  });

  it('ignores what other namespaces and devices do', () => {
    for (const line of [
      '9: nsr-other@if2: <BROADCAST,MULTICAST,UP,LOWER_UP> mtu 1500 qdisc noqueue state UP group default ',
      '3: upsx: <BROADCAST,MULTICAST,UP,LOWER_UP> mtu 1500 state UP',
      '10.231.0.4/30 dev nsr-other table 7101 scope link ',
      'Deleted 10.231.0.4/30 dev nsr-other table 7101 scope link ',
      '4200:\tfrom all fwmark 0x6e720001 lookup 7101',
      'Deleted 3: ups    inet 10.99.2.7/24 scope global ups',
      'Deleted default via 10.99.3.1 dev eth2 table 7102 ',
      '    link/ether 76:02:ae:c6:ca:83 brd ff:ff:ff:ff:ff:ff',
    ]) {
      expect(relevantEvent(line, devs, tables), line).toBe(false);
    }
  });
});

describe('eventSubject', () => {
  it('names the device, table or fail-closed rule a line is about, in constant time (a map lookup follows)', () => {
    expect(eventSubject('3: ups@if2: <BROADCAST,MULTICAST,UP,LOWER_UP> mtu 1500 state UP')).toEqual({ dev: 'ups' });
    expect(eventSubject('Deleted 3: ups: <BROADCAST,MULTICAST> mtu 1500 state DOWN')).toEqual({ dev: 'ups' });
    expect(eventSubject('3: ups    inet 10.99.2.7/24 scope global ups')).toEqual({ dev: 'ups' });
    expect(eventSubject('Deleted default via 10.99.2.1 dev ups table 7101 ')).toEqual({ table: 7101 });
    expect(eventSubject('Deleted unreachable default table 7102 metric 4278190080 ')).toEqual({ table: 7102 });
    expect(eventSubject('Deleted 4200:\tfrom all fwmark 0x6e720001 lookup 7101')).toEqual({ table: 7101 });
    expect(eventSubject('Deleted 4202:\tfrom 10.231.0.0/30 unreachable')).toEqual({ guard: true });
    for (const line of ['Deleted 3: ups    inet 10.99.2.7/24 scope global ups', 'Deleted 10.231.0.4/30 dev nsr-x table 7101 scope link ', 'default via 10.99.2.1 dev ups table 7101 ', '4200:\tfrom all fwmark 0x6e720001 lookup 7101']) {
      expect(eventSubject(line), line).toBeUndefined();
    }
  });
});
