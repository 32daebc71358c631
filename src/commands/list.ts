import { validateName } from '../net/names.js';
import { allStates, isFromEarlierBoot, readState } from '../state/store.js';
import { listText, statusJson, statusText } from './format.js';

// Reads only: state files are replaced atomically, so no lock is needed to show them.
export async function runList(opts: { json?: boolean }): Promise<number> {
  const all = allStates().map(statusJson);
  process.stdout.write((opts.json ? JSON.stringify(all, null, 2) : listText(all)) + '\n');
  return 0;
}

export const STATUS_NOT_UP = 3;

export async function runStatus(name: string, opts: { json?: boolean }): Promise<number> {
  validateName(name);
  const st = readState(name);
  if (!st || isFromEarlierBoot(st)) {
    if (opts.json) process.stdout.write(JSON.stringify({ name, up: false }) + '\n');
    else process.stdout.write(`${name}: not up\n`);
    return STATUS_NOT_UP;
  }
  const s = statusJson(st);
  process.stdout.write((opts.json ? JSON.stringify(s, null, 2) : statusText(s)) + '\n');
  return s.up ? 0 : STATUS_NOT_UP;
}
