import { bringUp } from '../apply/lifecycle.js';
import type { UplinkWaiting } from '../plan/plan.js';
import type { RouteOptions } from '../profile/profile.js';
import { statusJson, statusText } from './format.js';
import { loadProfile, requireRoot } from './options.js';

// up: create NAME (or make an ephemeral one persistent) and keep it until `down`.
export async function runUp(name: string, opts: RouteOptions & { json?: boolean; watch?: boolean; requireProfile?: boolean }): Promise<number> {
  requireRoot();
  const profile = loadProfile(name, opts, { required: opts.requireProfile });
  const { state, created, waiting } = await bringUp({ profile, persistent: true, watch: opts.watch !== false, waitForMissingUplink: opts.requireProfile === true });
  const s = statusJson(state);
  if (opts.json) process.stdout.write(JSON.stringify({ ...s, created, ...(waiting ? { waiting } : {}) }, null, 2) + '\n');
  else process.stdout.write(`${created ? 'created' : 'kept'} ${name}\n${statusText(s)}\n`);
  if (waiting) process.stderr.write(waitingLine(name, waiting, opts.watch !== false) + '\n');
  return 0;
}

// up of a persistent NAME whose uplink is not usable yet succeeds (at boot the unit must not
// fail, nor its services with it): one line says traffic is blocked and when it flows.
export function waitingLine(name: string, w: UplinkWaiting, watched: boolean): string {
  const why = w.reason === 'missing' ? 'does not exist yet' : w.reason === 'down' ? 'is down' : 'has no IPv4 address yet';
  const when = watched ? `its watcher opens it when ${w.dev} is up` : `the next nsroute command on ${name} opens it once ${w.dev} is up (--no-watch)`;
  return `nsroute: ${name} is up with its kill switch closed: uplink ${w.dev} ${why}, so its traffic is blocked; ${when}`;
}
