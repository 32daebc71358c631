import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { namespaceUnit, parseServiceName, quoteArg, renderDropIn, renderUnit, UNIT_MARK } from '../../../src/systemd/render.js';
import { catchUserError } from '../helpers.js';

const templates = join(import.meta.dirname, '..', '..', '..', 'templates');
const unitTemplate = readFileSync(join(templates, 'nsroute.service.in'), 'utf8');
const dropInTemplate = readFileSync(join(templates, 'attach.conf.in'), 'utf8');

describe('parseServiceName', () => {
  it('adds .service and keeps instance names', () => {
    expect(parseServiceName('transmission-daemon')).toBe('transmission-daemon.service');
    expect(parseServiceName('backup@daily.service')).toBe('backup@daily.service');
  });
  it('refuses non-services, junk and nsroute itself, with the fix', () => {
    // '-…': passed to systemctl, it would be read as options.
    for (const bad of ['a b', 'x.socket', '', '.service', 'nsroute-slow', '-foo', '--now.service', '-h']) {
      expect(catchUserError(() => parseServiceName(bad)).hint, bad).toMatch(/service|attach/);
    }
  });
});

describe('renderUnit', () => {
  const unit = renderUnit(unitTemplate, {
    name: 'slow',
    profile: '/etc/nsroute/slow.toml',
    nsroute: ['/usr/bin/node', '/opt/my tools/nsroute.js'],
    env: { NSROUTE_RUN_DIR: '/run/x', NSROUTE_CONFIG_DIR: '/etc/n s' },
  });

  it("is marked as nsroute's and fully filled in", () => {
    expect(unit.startsWith(UNIT_MARK)).toBe(true);
    expect(unit).not.toMatch(/@[A-Z]+@/);
    expect(namespaceUnit('slow')).toBe('nsroute-slow.service');
  });

  it('runs the nsroute that enabled it, quoted the way systemd reads it, with its settings', () => {
    expect(unit).toContain('ExecStart=/usr/bin/node "/opt/my tools/nsroute.js" up slow --require-profile\n');
    expect(unit).toContain('ExecStop=/usr/bin/node "/opt/my tools/nsroute.js" down slow --force\n');
    expect(unit).toContain('Environment="NSROUTE_CONFIG_DIR=/etc/n s"\nEnvironment=NSROUTE_RUN_DIR=/run/x\nExecStart=');
  });

  it('quotes only what needs it', () => {
    expect(quoteArg('/usr/bin/node')).toBe('/usr/bin/node');
    expect(quoteArg('a "b"\\c')).toBe('"a \\"b\\"\\\\c"');
  });
});

describe('renderDropIn', () => {
  it('binds the namespace files and hides the resolver daemons on a plain host', () => {
    const text = renderDropIn(dropInTemplate, { name: 'slow', unit: 'torrent.service' });
    expect(text).toContain('NetworkNamespacePath=/run/netns/slow\n');
    expect(text).toContain('BindReadOnlyPaths=/etc/netns/slow/resolv.conf:/etc/resolv.conf\nInaccessiblePaths=-/run/systemd/resolve\n');
    expect(text).toContain('InaccessiblePaths=-/run/nscd\n');
    expect(text).toContain('BindsTo=nsroute-slow.service\nAfter=nsroute-slow.service\n');
  });

  it('follows a resolv.conf symlink into resolved\'s directory', () => {
    const text = renderDropIn(dropInTemplate, { name: 'slow', unit: 'torrent.service', resolvConfTarget: '/run/systemd/resolve/stub-resolv.conf' });
    expect(text).toContain('TemporaryFileSystem=/run/systemd/resolve:ro\nBindReadOnlyPaths=/etc/netns/slow/resolv.conf:/run/systemd/resolve/stub-resolv.conf\n');
    expect(text).not.toContain(':/etc/resolv.conf');
    // A symlink elsewhere (resolvconf) is bound like a plain file.
    expect(renderDropIn(dropInTemplate, { name: 'slow', unit: 'x.service', resolvConfTarget: '/run/resolvconf/resolv.conf' })).toContain(':/etc/resolv.conf');
  });
});
