import { existsSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { HostError, SysError, UserError } from '../errors.js';
import { run } from '../sys/run.js';
import { validateName } from '../net/names.js';
import { dropInName, namespaceUnit, parseServiceName, renderDropIn, renderUnit, UNIT_MARK } from '../systemd/render.js';
import { listDir, readTextIfExists, removeDirIfEmpty, removeIfExists, writeFileAtomic } from '../sys/fsx.js';
import { nsrouteCommand, readTemplate, resolvConfTarget, systemctl, systemdManages, unitDir } from '../sys/systemd.js';
import { paths } from '../state/paths.js';
import { readTrustedText } from '../sys/trusted-file.js';
import { loadProfile, requireRoot } from './options.js';
import { runsNoPrograms, noProgramsError } from '../apply/hostmode.js';

// enable / disable / attach / detach: systemd units for persistent namespaces and for
// services that run inside them. Every file nsroute writes starts with UNIT_MARK; a file
// without it is someone else's and is never overwritten or removed.

// NSROUTE_* settings in force now, so that the unit behaves like the command that made it.
const KEPT_ENV = ['NSROUTE_RUN_DIR', 'NSROUTE_LIB_DIR', 'NSROUTE_CONFIG_DIR', 'NSROUTE_RESOLV_CONF', 'NSROUTE_RESOLVED_CONF', 'NSROUTE_NSSWITCH_CONF'];

interface UnitResult {
  name: string;
  unit: string;
  path: string;
  changed: boolean; // a file was written or removed
  systemctl: string[]; // what nsroute ran, or (when systemd does not manage the dir) what to run
  ran: boolean;
}

function isOurs(path: string): boolean {
  return readTextIfExists(path)?.startsWith(UNIT_MARK) ?? false;
}

function report(r: UnitResult, json: boolean | undefined, done: string): void {
  if (json) {
    process.stdout.write(JSON.stringify(r) + '\n');
    return;
  }
  process.stdout.write(`${done}\n`);
  if (!r.ran && r.systemctl.length > 0) {
    const why = process.env.NSROUTE_UNIT_DIR ? 'NSROUTE_UNIT_DIR is set' : 'systemd is not running';
    process.stderr.write(`nsroute: ${why}, so nothing was started; to apply it run: ${r.systemctl.join(' && ')}\n`);
  }
}

async function apply(commands: string[][]): Promise<boolean> {
  if (!systemdManages()) return false;
  for (const c of commands) await systemctl(c);
  return true;
}

// Drop-ins of nsroute's for NAME (UNIT.d/nsroute-NAME.conf) anywhere in the unit dir.
function attachedUnits(name: string): string[] {
  return listDir(unitDir())
    .filter((d) => d.endsWith('.service.d') && isOurs(join(unitDir(), d, dropInName(name))))
    .map((d) => d.slice(0, -2));
}

export async function runEnable(name: string, opts: { now?: boolean; json?: boolean }): Promise<number> {
  validateName(name);
  requireRoot({ network: false });
  const profile = paths.profile(name);
  // Read with the same checks as every command (a dangling link or a FIFO is not "missing").
  if (readTrustedText(profile, 'profile') === undefined) {
    throw new UserError(`the unit brings ${name} up from ${profile}, which does not exist`, 'write it first (templates/profile.example.toml; an empty file means the defaults)');
  }
  loadProfile(name, {}); // a broken profile fails now, not at boot
  const unit = namespaceUnit(name);
  const path = join(unitDir(), unit);
  if (existsSync(path) && !isOurs(path)) throw new UserError(`${path} exists and was not written by nsroute`, 'move it away, or pick another name');
  const env = Object.fromEntries(KEPT_ENV.flatMap((k) => (process.env[k] ? [[k, process.env[k]!]] : [])));
  const text = renderUnit(readTemplate('nsroute.service.in'), { name, profile, nsroute: nsrouteCommand(), env });
  const before = readTextIfExists(path);
  const changed = before !== text;
  // --now under systemd: enable, then start, and a start that fails undoes the enable (the
  // unit would fail at every boot); what enable finds before it is what the undo puts back.
  const wasEnabled = opts.now && before !== undefined && systemdManages() ? await isEnabled(unit) : false;
  mkdirSync(unitDir(), { recursive: true, mode: 0o755 });
  if (changed) writeFileAtomic(path, text, 0o644);
  const commands = [['daemon-reload'], ['enable', ...(opts.now ? ['--now'] : []), unit]];
  const ran = opts.now && systemdManages() ? await enableAndStart(name, unit, path, before, wasEnabled) : await apply(commands);
  report({ name, unit, path, changed, systemctl: commands.map((c) => `systemctl ${c.join(' ')}`), ran }, opts.json, `enabled ${unit} (${path})`);
  return 0;
}

async function isEnabled(unit: string): Promise<boolean> {
  return (await run(['systemctl', 'is-enabled', unit], { allowFail: true })).stdout.trim() === 'enabled';
}

// The last `nsroute: ...` line the unit's failed start wrote to the journal (its ExecStart's
// error), without the prefix; undefined when the journal has none.
async function startFailure(unit: string): Promise<string | undefined> {
  const id = (await run(['systemctl', 'show', '--property=InvocationID', '--value', unit], { allowFail: true })).stdout.trim();
  if (!/^[0-9a-f]{32}$/.test(id)) return undefined;
  const log = await run(['journalctl', '--no-pager', '--output=cat', `_SYSTEMD_INVOCATION_ID=${id}`], { allowFail: true });
  const line = log.stdout.split('\n').filter((l) => l.startsWith('nsroute: ')).pop();
  return line?.slice('nsroute: '.length);
}

async function enableAndStart(name: string, unit: string, path: string, before: string | undefined, wasEnabled: boolean): Promise<boolean> {
  await systemctl(['daemon-reload']);
  await systemctl(['enable', unit]);
  try {
    await systemctl(['start', unit]);
    return true;
  } catch (e) {
    if (!(e instanceof SysError)) throw e;
  }
  const why = await startFailure(unit);
  if (before === undefined) {
    await systemctl(['disable', unit]);
    removeIfExists(path);
  } else {
    writeFileAtomic(path, before, 0o644);
    if (!wasEnabled) await systemctl(['disable', unit]);
  }
  await systemctl(['daemon-reload']);
  await run(['systemctl', 'reset-failed', unit], { allowFail: true });
  throw new HostError(
    `${unit} did not start${why ? ` (${why})` : ''}, so enable was undone`,
    `fix that and run \`nsroute enable ${name} --now\` again; \`journalctl -u ${unit}\` has the details`,
  );
}

export async function runDisable(name: string, opts: { now?: boolean; json?: boolean }): Promise<number> {
  validateName(name);
  requireRoot({ network: false });
  const unit = namespaceUnit(name);
  const path = join(unitDir(), unit);
  const users = attachedUnits(name);
  if (users.length > 0) {
    throw new UserError(`${users.join(', ')} ${users.length === 1 ? 'is' : 'are'} attached to ${name}`, `\`nsroute detach ${name} ${users[0]}\` first`);
  }
  if (existsSync(path) && !isOurs(path)) throw new UserError(`${path} was not written by nsroute`, 'nsroute leaves it alone; remove it yourself');
  const present = existsSync(path);
  const commands = present ? [['disable', ...(opts.now ? ['--now'] : []), unit]] : [];
  const ran = present ? await apply(commands) : false;
  removeIfExists(path);
  if (present && systemdManages()) await systemctl(['daemon-reload']);
  const all = present ? [...commands, ['daemon-reload']] : [];
  report({ name, unit, path, changed: present, systemctl: all.map((c) => `systemctl ${c.join(' ')}`), ran }, opts.json, present ? `disabled ${unit}` : `${unit} was not enabled; nothing to do`);
  return 0;
}

export async function runAttach(name: string, service: string, opts: { json?: boolean }): Promise<number> {
  validateName(name);
  requireRoot({ network: false });
  const unit = parseServiceName(service);
  if (!isOurs(join(unitDir(), namespaceUnit(name)))) {
    throw new UserError(`${name} has no unit to bind ${unit} to`, `\`nsroute enable ${name}\` first`);
  }
  // A host mode without programs (--mode replies) has nothing to run the service in; cgroup
  // mode has no drop-in that puts a service in its cgroup (yet).
  const mode = loadProfile(name, {}).mode;
  if (mode === 'cgroup') throw new UserError(`attach is not available for --mode cgroup (${name})`, `start the service's program with \`nsroute exec ${name} -- ...\`, or move its running processes in with \`nsroute move ${name} PID...\``);
  if (runsNoPrograms(mode)) {
    const e = noProgramsError(name, mode);
    throw new UserError(e.message, e.hint);
  }
  const dir = join(unitDir(), `${unit}.d`);
  const other = listDir(dir).find((f) => /^nsroute-.+\.conf$/.test(f) && f !== dropInName(name) && isOurs(join(dir, f)));
  if (other) {
    const owner = other.slice('nsroute-'.length, -'.conf'.length);
    throw new UserError(`${unit} is attached to ${owner}; a service runs in one network namespace`, `\`nsroute detach ${owner} ${unit}\` first`);
  }
  const path = join(dir, dropInName(name));
  if (existsSync(path) && !isOurs(path)) throw new UserError(`${path} exists and was not written by nsroute`, 'move it away first');
  const text = renderDropIn(readTemplate('attach.conf.in'), { name, unit, resolvConfTarget: resolvConfTarget() });
  const changed = readTextIfExists(path) !== text;
  if (changed) writeFileAtomic(path, text, 0o644);
  const commands = [['daemon-reload'], ['try-restart', unit]];
  const ran = await apply(commands);
  report({ name, unit, path, changed, systemctl: commands.map((c) => `systemctl ${c.join(' ')}`), ran }, opts.json, `attached ${unit} to ${name} (${path})`);
  return 0;
}

export async function runDetach(name: string, service: string, opts: { json?: boolean }): Promise<number> {
  validateName(name);
  requireRoot({ network: false });
  const unit = parseServiceName(service);
  const dir = join(unitDir(), `${unit}.d`);
  const path = join(dir, dropInName(name));
  if (existsSync(path) && !isOurs(path)) throw new UserError(`${path} was not written by nsroute`, 'nsroute leaves it alone; remove it yourself');
  const present = existsSync(path);
  if (present) {
    removeIfExists(path);
    removeDirIfEmpty(dir);
  }
  const commands = present ? [['daemon-reload'], ['try-restart', unit]] : [];
  const ran = present ? await apply(commands) : false;
  report({ name, unit, path, changed: present, systemctl: commands.map((c) => `systemctl ${c.join(' ')}`), ran }, opts.json, present ? `detached ${unit} from ${name}` : `${unit} was not attached to ${name}; nothing to do`);
  return 0;
}
