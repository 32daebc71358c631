import { describe, expect, it } from 'vitest';
import { targetAccount } from '../../../src/commands/exec.js';
import { UserError } from '../../../src/errors.js';

// Issue 10, finding 7: whom exec runs the command as must never silently become root.
describe('targetAccount fails closed', () => {
  it.each([
    ['abc'],
    [''],
    [' 1000'],
    ['1000 '],
    ['-1'],
    ['1e3'],
    ['0x3e8'],
    ['4294967295'],
    ['99999999999'],
  ])('refuses SUDO_UID=%j', async (uid) => {
    const e = await targetAccount({}, { SUDO_UID: uid, SUDO_USER: 'someone' }).catch((x: unknown) => x);
    expect(e).toBeInstanceOf(UserError);
    expect((e as UserError).message).toContain('SUDO_UID');
  });

  it.each(['abc', '', '-5'])('refuses SUDO_GID=%j with a valid SUDO_UID', async (gid) => {
    const e = await targetAccount({}, { SUDO_UID: '4242', SUDO_GID: gid }).catch((x: unknown) => x);
    expect(e).toBeInstanceOf(UserError);
    expect((e as UserError).message).toContain('SUDO_GID');
  });

  it.each(['', '-x', '--help', 'a b', 'a:b', 'a/b'])('refuses --user %j', async (user) => {
    const e = await targetAccount({ user }, {}).catch((x: unknown) => x);
    expect(e).toBeInstanceOf(UserError);
    expect((e as UserError).message).toContain('--user');
  });

  it('--as-root or --user wins over a malformed SUDO_UID (the caller said whom)', async () => {
    expect((await targetAccount({ asRoot: true }, { SUDO_UID: 'abc' })).account.uid).toBe(0);
    expect((await targetAccount({ user: '0' }, { SUDO_UID: 'abc' })).account.uid).toBe(0);
  });

  it('runs as the sudo user for a well-formed SUDO_UID, as root without one', async () => {
    expect(await targetAccount({}, { SUDO_UID: '4242', SUDO_GID: '4343', SUDO_USER: 'ghost' })).toMatchObject({ switchUser: true, account: { uid: 4242, gid: 4343 } });
    expect(await targetAccount({}, {})).toMatchObject({ switchUser: false, account: { uid: 0 } });
    expect(await targetAccount({}, { SUDO_UID: '0' })).toMatchObject({ switchUser: false, account: { uid: 0 } });
  });
});
