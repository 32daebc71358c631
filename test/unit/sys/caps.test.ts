import { describe, expect, it } from 'vitest';
import { effectiveCaps, missingCaps, permissionError, requireNetworkCaps } from '../../../src/sys/caps.js';
import { runsInUnit } from '../../../src/sys/unit-active.js';
import { SysError, UserError } from '../../../src/errors.js';

const status = (eff: string) => `Name:\tnode\nCapInh:\t0000000000000000\nCapPrm:\t${eff}\nCapEff:\t${eff}\nCapBnd:\t${eff}\n`;

describe('capabilities (issue 14)', () => {
  it('reads CapEff and names what is missing', () => {
    expect(missingCaps(effectiveCaps(status('000001ffffffffff')))).toEqual([]);
    // setpriv --bounding-set=-net_admin: bit 12 cleared.
    expect(missingCaps(effectiveCaps(status('000001ffffffefff')))).toEqual(['CAP_NET_ADMIN']);
    // docker's default set: neither.
    expect(missingCaps(effectiveCaps(status('00000000a80425fb')))).toEqual(['CAP_NET_ADMIN', 'CAP_SYS_ADMIN']);
    expect(missingCaps(undefined)).toEqual([]);
  });

  it('refuses in one line with the fix', () => {
    expect(() => requireNetworkCaps(effectiveCaps(status('000001ffffffffff')))).not.toThrow();
    try {
      requireNetworkCaps(effectiveCaps(status('000001ffffffefff')));
      expect.unreachable();
    } catch (e) {
      expect(e).toBeInstanceOf(UserError);
      expect((e as UserError).message).toContain('without CAP_NET_ADMIN');
      expect((e as UserError).hint).toContain('--cap-add NET_ADMIN');
      expect(`${(e as UserError).message}; ${(e as UserError).hint}`).not.toContain('\n');
    }
  });

  it("maps a tool's EPERM to the same one line", () => {
    const e = new SysError('ip -batch - failed (exit 1): RTNETLINK answers: Operation not permitted\nCommand failed -:1', ['ip', '-batch', '-'], 1, 'RTNETLINK answers: Operation not permitted\nCommand failed -:1');
    expect(permissionError(e)?.message).toMatch(/^`ip` was refused \(Operation not permitted\): nsroute needs CAP_NET_ADMIN/);
    expect(permissionError(new SysError('x', ['ip'], 2, 'RTNETLINK answers: File exists'))).toBeUndefined();
    expect(permissionError(new Error('Operation not permitted'))).toBeUndefined();
  });
});

describe('runsInUnit', () => {
  it("knows the unit's own control group, on v2, hybrid and inside a container", () => {
    expect(runsInUnit('nsroute-slow.service', '0::/system.slice/nsroute-slow.service\n')).toBe(true);
    expect(runsInUnit('nsroute-slow.service', '1:name=systemd:/system.slice/nsroute-slow.service\n0::/system.slice/nsroute-slow.service\n')).toBe(true);
    expect(runsInUnit('nsroute-slow.service', '0::/user.slice/user-0.slice/session-1.scope\n')).toBe(false);
    expect(runsInUnit('nsroute-slow.service', '0::/system.slice/nsroute-slower.service\n')).toBe(false);
    expect(runsInUnit('nsroute-slow.service', '0::/\n')).toBe(false);
  });
});
