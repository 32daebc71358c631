import { inspectAll } from '../apply/views.js';
import { validateName } from '../net/names.js';
import { isVisibleName } from '../policy/context.js';
import { conditionHint, listText, statusJson, statusText } from './format.js';
import { writeStdout } from '../sys/stdout.js';

// list and status change nothing: what needs cleaning up is shown, and `nsroute gc` (or the
// next command on that NAME) does it.
export async function runList(opts: { json?: boolean }): Promise<number> {
  const all = (await inspectAll()).filter((v) => isVisibleName(v.state.name)).map(statusJson);
  writeStdout((opts.json ? JSON.stringify(all, null, 2) : listText(all)) + '\n');
  if (!opts.json) for (const s of all) if (conditionHint(s)) process.stderr.write(`nsroute: ${conditionHint(s)}\n`);
  return 0;
}

export const STATUS_NOT_UP = 3;

export async function runStatus(name: string, opts: { json?: boolean }): Promise<number> {
  validateName(name);
  const view = (await inspectAll()).find((v) => v.state.name === name);
  if (!view) {
    writeStdout(opts.json ? JSON.stringify({ name, up: false }) + '\n' : `${name}: not up\n`);
    return STATUS_NOT_UP;
  }
  const s = statusJson(view);
  writeStdout((opts.json ? JSON.stringify(s, null, 2) : statusText(s)) + '\n');
  return s.up ? 0 : STATUS_NOT_UP;
}
