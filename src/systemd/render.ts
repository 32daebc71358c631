import { UserError } from '../errors.js';

// systemd units nsroute writes (templates/*.in, @KEY@ placeholders). Pure: the caller reads
// the templates and the host facts (sys/systemd.ts).
export const UNIT_MARK = '# Written by `nsroute ';

export function namespaceUnit(name: string): string {
  return `nsroute-${name}.service`;
}

export function dropInName(name: string): string {
  return `nsroute-${name}.conf`;
}

// A service name as systemctl takes it; `.service` is added when no suffix is given.
export function parseServiceName(text: string): string {
  const unit = /\.[a-z]+$/.test(text) ? text : `${text}.service`;
  // Never starting with "-": the name is passed to systemctl, which would read it as options.
  if (!/^[A-Za-z0-9:_.\\@-]{1,247}\.service$/.test(unit) || unit.startsWith('.') || unit.startsWith('-')) {
    throw new UserError(`${JSON.stringify(text)} is not a service unit name`, 'give a service, e.g. transmission-daemon or backup.service');
  }
  if (/^nsroute-.*\.service$/.test(unit)) {
    throw new UserError(`${unit} is nsroute's own unit`, 'attach the service that should run inside the namespace');
  }
  return unit;
}

function fill(template: string, values: Record<string, string>): string {
  return template.replace(/@([A-Z0-9]+)@/g, (whole, key: string) => {
    const v = values[key];
    if (v === undefined) throw new Error(`template placeholder ${whole} has no value`);
    return v;
  });
}

// systemd command-line quoting: a word with spaces, quotes or backslashes is double-quoted.
export function quoteArg(word: string): string {
  if (/^[A-Za-z0-9_@%+=:,./-]+$/.test(word)) return word;
  return `"${word.replace(/\\/g, '\\\\').replace(/"/g, '\\"')}"`;
}

export interface UnitInput {
  name: string;
  profile: string; // path of the profile the unit brings NAME up from
  nsroute: readonly string[]; // the command that was used to enable: node + script
  env: Record<string, string>; // NSROUTE_* settings in force at enable, kept for the unit
}

export function renderUnit(template: string, u: UnitInput): string {
  const env = Object.entries(u.env)
    .sort(([a], [b]) => a.localeCompare(b))
    .map(([k, v]) => `Environment=${quoteArg(`${k}=${v}`)}\n`)
    .join('');
  return fill(template, { NAME: u.name, PROFILE: u.profile, NSROUTE: u.nsroute.map(quoteArg).join(' '), ENVIRONMENT: env });
}

export interface DropInInput {
  name: string;
  unit: string;
  // Where the host's /etc/resolv.conf points, when it is a symlink (systemd-resolved's stub).
  resolvConfTarget?: string;
}

// The namespace's files over /etc, as `ip netns exec` binds them, and the host resolver
// daemons' sockets out of view, as `nsroute exec` hides them. When /etc/resolv.conf is a
// link into systemd-resolved's directory, that directory becomes an empty tmpfs holding the
// namespace's resolv.conf at the link's target, so the link leads to the namespace's file.
export function renderDropIn(template: string, d: DropInInput): string {
  const dir = `/etc/netns/${d.name}`;
  const binds: string[] = [];
  const resolved = '/run/systemd/resolve';
  const linked = d.resolvConfTarget?.startsWith(`${resolved}/`) ? d.resolvConfTarget : undefined;
  if (linked) {
    binds.push(`TemporaryFileSystem=${resolved}:ro`, `BindReadOnlyPaths=${dir}/resolv.conf:${linked}`);
  } else {
    binds.push(`BindReadOnlyPaths=${dir}/resolv.conf:/etc/resolv.conf`, `InaccessiblePaths=-${resolved}`);
  }
  binds.push(`BindReadOnlyPaths=${dir}/gai.conf:/etc/gai.conf`, `BindReadOnlyPaths=-${dir}/nsswitch.conf:/etc/nsswitch.conf`, 'InaccessiblePaths=-/run/nscd');
  return fill(template, { NAME: d.name, UNIT: d.unit, NSUNIT: namespaceUnit(d.name), BINDS: binds.join('\n') });
}
