import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { UserError } from '../errors.js';
import { namespaceUnit } from '../systemd/render.js';
import { run } from './run.js';
import { systemdManages, unitDir } from './systemd.js';

// `nsroute down NAME` by hand while nsroute-NAME.service is active took NAME away under systemd:
// the unit stayed `active (exited)` and its attached services then failed with
// status=225/NETWORK. down refuses instead and names `systemctl stop`, which runs the unit's
// own `down --force` and stops the attached services with it (their BindsTo=). Refused rather
// than done for the user: stopping the unit stops services too, more than `down` says, and
// `down` without --force never ends a running program.

// Whether this process runs in UNIT's control group (the unit's own ExecStop, which must act).
export function runsInUnit(unit: string, cgroupText?: string): boolean {
  let text = cgroupText;
  if (text === undefined) {
    try {
      text = readFileSync('/proc/self/cgroup', 'utf8');
    } catch {
      return false;
    }
  }
  return text.split('\n').some((l) => l.slice(l.indexOf(':', l.indexOf(':') + 1) + 1).split('/').pop() === unit);
}

// Throws when NAME's unit is active and this is not the unit itself. Costs nothing (no spawn)
// unless NAME has a unit file and systemd runs.
export async function refuseWhileUnitActive(name: string): Promise<void> {
  const unit = namespaceUnit(name);
  if (!systemdManages() || !existsSync(join(unitDir(), unit)) || runsInUnit(unit)) return;
  const r = await run(['systemctl', 'is-active', unit], { allowFail: true });
  const state = r.stdout.trim();
  if (!['active', 'activating', 'reloading'].includes(state)) return;
  throw new UserError(
    `${name} belongs to ${unit}, which is ${state}; taken down by hand, systemd would still count it up and the services attached to it would not start`,
    `\`systemctl stop nsroute-${name}\` takes it down, and the services attached to it`,
  );
}
