import { closeSync } from 'node:fs';
import type { Profile } from '../profile/profile.js';
import { readState, type Holder, type NamespaceState } from '../state/store.js';
import { joinKey, joinMarkPath, readJoinMark, recordJoin } from '../state/joins.js';
import { bootId } from '../sys/proc.js';
import { nftTableExists } from '../sys/nft.js';
import { paths } from '../state/paths.js';
import { Journal } from './journal.js';
import { openOwnNetns, runningWatcher } from './views.js';
import { conflicts } from '../plan/conflicts.js';
import { crashPoint } from './crash.js';

export interface LockFreeJoin {
  state: NamespaceState;
  netnsFd: number;
  // For the command's wrapper: it runs the command only while this file holds this line.
  mark: { path: string; key: string };
  // Removes the holder record (the exec is done).
  leave: () => void;
}

// A hot exec into a persistent NAME that is up, that the host watcher keeps right, with the
// same settings: no host lock (state/joins.ts says why that is exact against a `down`). The
// state is read as it is (written by rename, never torn). One look at nsroute's nft table
// keeps the promise that a firewall reload the watcher has not repaired yet is repaired before
// the command runs: when it is missing, the exec takes the lock and repairs. undefined: take
// the lock (bringUp).
export async function joinWithoutLock(profile: Profile, holder: Holder): Promise<LockFreeJoin | undefined> {
  const name = profile.name;
  let st: NamespaceState | undefined;
  try {
    st = readState(name);
  } catch {
    return undefined; // an untrusted or corrupt state: the locked path says so
  }
  if (!st || st.status !== 'up' || !st.persistent || st.noWatch || st.bootId !== bootId()) return undefined;
  if (conflicts(profile, st.config).length > 0 || runningWatcher() === undefined) return undefined;
  await crashPoint('join', 1);
  let owner;
  try {
    owner = new Journal(paths.journal(name)).netnsOwnership();
  } catch {
    return undefined;
  }
  if (typeof owner !== 'object') return undefined;
  const key = joinKey(owner);
  // The settings checked above are those of the namespace the state records: a `down` and an
  // `up` with other settings since the state was read made another namespace of that name,
  // whose journal and mark agree with each other. A state that records none (written by an
  // older nsroute) cannot say which it describes: the locked path.
  if (!st.netns || joinKey(st.netns) !== key) return undefined;
  if (readJoinMark(name) !== key) return undefined;
  // Recorded before the command's wrapper checks the mark: a teardown that looks after this
  // finds the exec; one that looked before has removed the mark, and the wrapper refuses.
  const leave = recordJoin(name, holder);
  let fd: number | undefined;
  try {
    if (await nftTableExists()) fd = openOwnNetns(name);
  } catch {
    /* the locked path */
  }
  if (fd === undefined) {
    leave();
    return undefined;
  }
  if (readJoinMark(name) !== key) {
    // A teardown began meanwhile: the locked path (which waits for it) decides.
    closeSync(fd);
    leave();
    return undefined;
  }
  return { state: st, netnsFd: fd, mark: { path: joinMarkPath(name), key }, leave };
}
