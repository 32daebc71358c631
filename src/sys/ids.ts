// Reads /etc/nsroute/nsroute.conf (the mark, table and rule priority bases; net/ids.ts) once
// per run, before any command plans. A root-owned file, not an environment variable: the
// ids decide which packets nsroute routes, so whoever can set them must already be root.
import { readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { UserError } from '../errors.js';
import { DEFAULT_IDS, chooseIds, idsOfUplink, parseIdsConf, useIds, type IdBases } from '../net/ids.js';
import { allStates } from '../state/store.js';
import { configDir } from '../state/paths.js';

export const idsConfPath = (): string => join(configDir(), 'nsroute.conf');

export interface LoadedIds {
  configured: IdBases; // what nsroute.conf says (or the defaults)
  ids: IdBases; // what this run uses
  deferred: boolean; // namespaces with other ids exist: the configured ones wait for them
  file?: string;
}

export function readIdsConf(): { ids: IdBases; file?: string } {
  const file = idsConfPath();
  let st;
  try {
    st = statSync(file);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return { ids: DEFAULT_IDS };
    throw new UserError(`${file} cannot be read: ${(e as NodeJS.ErrnoException).code}`, 'fix its permissions, or remove it');
  }
  if (!st.isFile() || st.uid !== 0 || (st.mode & 0o022) !== 0) {
    throw new UserError(`${file} must be a file owned by root and writable by nobody else`, `chown root:root ${file} && chmod 644 ${file}`);
  }
  return { ids: parseIdsConf(readFileSync(file, 'utf8'), file), file };
}

export function loadIds(): LoadedIds {
  const { ids: configured, file } = readIdsConf();
  // Namespaces keep the ids they were created with, also after the file changed or went.
  let recorded: IdBases[] = [];
  try {
    recorded = allStates().flatMap((s) => (s.config.uplink ? [idsOfUplink(s.config.uplink)] : []));
  } catch {
    // unreadable state is reported by the command that needs it
  }
  const { ids, deferred } = chooseIds(configured, recorded);
  useIds(ids);
  return { configured, ids, deferred, ...(file ? { file } : {}) };
}

// What every command that plans does first (cli.ts; exec and shell once their host read has
// started, commands/exec.ts): the ids in effect, and a line when the configured ones wait.
export function loadIdsOrSayWhy(): void {
  const loaded = loadIds();
  if (loaded.deferred) {
    process.stderr.write(`nsroute: ${loaded.file ?? 'the default ids'}: not in effect yet; namespaces created with mark base 0x${loaded.ids.markBase.toString(16)} and table base ${loaded.ids.tableBase} keep them until they are gone\n`);
  }
}
