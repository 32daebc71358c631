import { takeDown } from '../apply/lifecycle.js';
import { validateName } from '../net/names.js';
import { requireRoot } from './options.js';
import { refuseWhileUnitActive } from '../sys/unit-active.js';

// down: remove NAME and everything nsroute added for it. Idempotent: not up is not an error.
export async function runDown(name: string, opts: { force?: boolean; json?: boolean }): Promise<number> {
  validateName(name);
  requireRoot();
  await refuseWhileUnitActive(name);
  const res = await takeDown(name, Boolean(opts.force));
  if (opts.json) process.stdout.write(JSON.stringify({ name, wasUp: res.wasUp, ended: res.ended }) + '\n');
  else if (!res.wasUp) process.stderr.write(`nsroute: ${name} is not up; nothing to do\n`);
  else process.stdout.write(`removed ${name}${res.ended.length ? ` (ended ${res.ended.length} process(es))` : ''}\n`);
  return 0;
}
