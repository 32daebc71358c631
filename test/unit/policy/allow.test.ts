import { describe, expect, it } from 'vitest';
import { UserError } from '../../../src/errors.js';
import { allowedBy, parseAllow, renderEntry, renderSudoers, setAllowInText, validateAllowEntry, SUDOERS_HEADER, ENTRY_HEADER } from '../../../src/policy/allow.js';
import { auditLine } from '../../../src/policy/audit.js';
import { DEFAULT_QUOTA, parseQuota, quotaProblem } from '../../../src/policy/quota.js';
import { parseProfileToml } from '../../../src/profile/profile.js';
import { parseIdsConf } from '../../../src/net/ids.js';

const F = '/etc/nsroute/slow.toml';

describe('the allow key', () => {
  it('reads users and %groups, without duplicates', () => {
    expect(parseAllow(['alice', '%netdev', 'alice', 'bob_2', 'svc$'], F)).toEqual({ users: ['alice', 'bob_2', 'svc$'], groups: ['netdev'] });
  });

  // Each would mean something else in a sudoers file, or is no account name.
  for (const bad of ['', '%', 'ALL', 'alice, ALL', 'alice ALL=(ALL) ALL', '%sudo ALL', 'root\n', '#0', '1000', '-alice', 'al!ce', 'a"b', '%%g', 'a:b', 'a'.repeat(33), 'Alice', '../x', 'a\\b']) {
    it(`refuses ${JSON.stringify(bad)}`, () => {
      expect(() => validateAllowEntry(bad, F)).toThrow(UserError);
    });
  }

  it('refuses a value that is not a list of strings, and too many entries', () => {
    expect(() => parseAllow('alice', F)).toThrow(/must be a list/);
    expect(() => parseAllow([1], F)).toThrow(/user names/);
    expect(() => parseAllow(Array.from({ length: 65 }, (_, i) => `u${i}`), F)).toThrow(/at most 64/);
  });

  it('is a profile key: a bad one makes the profile invalid', () => {
    expect(parseProfileToml('via = "192.168.2.1"\nallow = ["alice"]\n', F)).toEqual({ via: '192.168.2.1' });
    expect(() => parseProfileToml('allow = ["alice, ALL"]\n', F)).toThrow(UserError);
  });
});

describe('allowedBy', () => {
  const allow = { users: ['alice'], groups: ['netdev'] };
  const gid = (g: string) => (g === 'netdev' ? 108 : undefined);
  it('allows a listed user, a member of a listed group, and root', () => {
    expect(allowedBy({ uid: 1000, name: 'alice', gids: [1000] }, allow, gid)).toBe('user alice');
    expect(allowedBy({ uid: 1001, name: 'bob', gids: [1001, 108] }, allow, gid)).toBe('group %netdev');
    expect(allowedBy({ uid: 0, name: 'root', gids: [0] }, undefined, gid)).toBe('root');
  });
  it('allows nobody else: no key, another group, a group that does not exist', () => {
    expect(allowedBy({ uid: 1001, name: 'bob', gids: [1001] }, allow, gid)).toBeUndefined();
    expect(allowedBy({ uid: 1000, name: 'alice', gids: [1000] }, undefined, gid)).toBeUndefined();
    expect(allowedBy({ uid: 1002, name: 'carol', gids: [1002] }, { users: [], groups: ['nosuch'] }, gid)).toBeUndefined();
  });
});

describe('setAllowInText', () => {
  it('appends the key, keeping comments and the other keys', () => {
    expect(setAllowInText('# slow\nvia = "192.168.2.1"\n', ['alice'], F)).toBe('# slow\nvia = "192.168.2.1"\nallow = ["alice"]\n');
    expect(setAllowInText('via = "192.168.2.1"', ['alice'], F)).toBe('via = "192.168.2.1"\nallow = ["alice"]\n');
  });
  it('replaces a one-line and a multi-line key, and removes it for nobody', () => {
    expect(setAllowInText('allow = ["bob"] # who\nvia = "192.168.2.1"\n', ['bob', '%g'], F)).toBe('allow = ["bob", "%g"]\nvia = "192.168.2.1"\n');
    expect(setAllowInText('allow = [\n  "bob",\n  "carol",\n]\nvia = "192.168.2.1"\n', ['carol'], F)).toBe('allow = ["carol"]\nvia = "192.168.2.1"\n');
    expect(setAllowInText('via = "192.168.2.1"\nallow = ["bob"]\n', [], F)).toBe('via = "192.168.2.1"\n');
  });
  it('refuses an edit it cannot make exactly', () => {
    expect(() => setAllowInText('allow = ["bob"]; via = 1\n', ['carol'], F)).toThrow(UserError);
    expect(() => setAllowInText('not toml = = \n', ['carol'], F)).toThrow(/not valid TOML/);
  });
});

describe('the sudoers drop-in and the entry point', () => {
  it('lets everyone allowed run the one entry point, with a reset environment', () => {
    const text = renderSudoers('/usr/local/lib/nsroute/nsroute-user', [
      { users: ['alice'], groups: ['netdev'] },
      { users: ['bob', 'alice'], groups: [] },
    ])!;
    expect(text.split('\n')).toEqual([
      SUDOERS_HEADER,
      'Defaults!/usr/local/lib/nsroute/nsroute-user env_reset, !env_keep, !setenv',
      '%netdev, alice, bob ALL = (root) NOPASSWD: /usr/local/lib/nsroute/nsroute-user',
      '',
    ]);
  });
  it('is nothing when nobody is allowed', () => {
    expect(renderSudoers('/x/nsroute-user', [{ users: [], groups: [] }])).toBeUndefined();
  });
  it('refuses paths that would mean something else in sudoers or sh', () => {
    for (const p of ['relative', '/a b', '/a,b', '/a:b', '/a=b', '/a\\b', '/a/../b', '/a$b', "/a'b", '/a\nb']) {
      expect(() => renderSudoers(p, [{ users: ['a'], groups: [] }]), p).toThrow(UserError);
      expect(() => renderEntry({ node: '/usr/bin/node', bundle: '/x/nsroute.js', entry: '/x/e', settings: { NSROUTE_RUN_DIR: p } }), p).toThrow(UserError);
    }
  });
  it('runs this node and bundle with --from-sudo first, in an environment it builds itself', () => {
    const text = renderEntry({ node: '/usr/bin/node', bundle: '/usr/lib/nsroute/nsroute.js', entry: '/e/nsroute-user', settings: { NSROUTE_RUN_DIR: '/tmp/w/run' } });
    const [shebang, header, line] = text.split('\n');
    expect(shebang).toBe('#!/bin/sh');
    expect(header).toBe(ENTRY_HEADER);
    expect(line).toMatch(/^exec \/usr\/bin\/env -i PATH=\S+ SUDO_UID="\$SUDO_UID" /);
    expect(line).toMatch(/ NSROUTE_ENTRY=\/e\/nsroute-user NSROUTE_RUN_DIR=\/tmp\/w\/run \/usr\/bin\/node \/usr\/lib\/nsroute\/nsroute.js --from-sudo "\$@"$/);
  });
});

describe('the per-user quota', () => {
  it('is read from nsroute.conf, which keeps its id keys', () => {
    expect(parseQuota('user_namespaces = 2\nuser_commands = 5\nmark_base = 0x6e730000\n', '/c')).toEqual({ namespaces: 2, commands: 5 });
    expect(parseQuota('', '/c')).toEqual(DEFAULT_QUOTA);
    expect(parseIdsConf('user_namespaces = 2\n', '/c').markBase).toBe(0x6e720000);
    expect(() => parseQuota('user_namespaces = -1\n', '/c')).toThrow(UserError);
    expect(() => parseQuota('user_commands = "9"\n', '/c')).toThrow(UserError);
  });
  it('counts other NAMEs held, never the one asked for, and commands', () => {
    const q = { namespaces: 1, commands: 3 };
    expect(quotaProblem(q, { names: [], commands: 0 }, 'a')).toBeUndefined();
    expect(quotaProblem(q, { names: ['a'], commands: 2 }, 'a')).toBeUndefined();
    expect(quotaProblem(q, { names: ['a'], commands: 1 }, 'b')).toMatch(/hold 1 namespace/);
    expect(quotaProblem(q, { names: ['a'], commands: 3 }, 'a')).toMatch(/run 3 nsroute command/);
    expect(quotaProblem({ namespaces: 0, commands: 3 }, { names: [], commands: 0 }, 'a')).toMatch(/user_namespaces = 0/);
  });
});

describe('audit lines', () => {
  it('say who, which command and NAME, and the outcome, on one printable line', () => {
    expect(auditLine({ uid: 1000, gid: 1000, name: 'alice', gids: [1000] }, 'exec', 'slow', 'allowed', 'by user alice')).toBe('user=alice uid=1000 command=exec name=slow allowed: by user alice');
    expect(auditLine({ uid: 1000, gid: 1000, name: 'alice', gids: [] }, 'up', undefined, 'refused', 'x\ny')).toBe('user=alice uid=1000 command=up name=- refused: x?y');
  });
});
