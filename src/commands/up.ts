import { bringUp } from '../apply/lifecycle.js';
import type { RouteOptions } from '../profile/profile.js';
import { statusJson, statusText } from './format.js';
import { loadProfile, requireRoot } from './options.js';

// up: create NAME (or make an ephemeral one persistent) and keep it until `down`.
export async function runUp(name: string, opts: RouteOptions & { json?: boolean; watch?: boolean; requireProfile?: boolean }): Promise<number> {
  requireRoot();
  const profile = loadProfile(name, opts, { required: opts.requireProfile });
  const { state, created } = await bringUp({ profile, persistent: true, watch: opts.watch !== false });
  const s = statusJson(state);
  if (opts.json) process.stdout.write(JSON.stringify({ ...s, created }, null, 2) + '\n');
  else process.stdout.write(`${created ? 'created' : 'kept'} ${name}\n${statusText(s)}\n`);
  return 0;
}
