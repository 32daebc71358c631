import { UserError } from '../errors.js';
import type { Profile } from '../profile/profile.js';
import { rateStep } from '../plan/inbound.js';
import { paths } from '../state/paths.js';
import { writeState, type NamespaceState } from '../state/store.js';
import { Journal } from './journal.js';
import { applyRate } from './inbound.js';
import { crashPoint } from './crash.js';

// `up NAME --rate-down/--rate-up` for a NAME that is up: the caps change in place, without
// recreating NAME. A new rate step is appended to NAME's journal (intent first, as every
// step), so teardown and gc undo it like the first one (undoing a rate step clears the caps,
// whatever their value). A direction not given keeps its cap. Caller holds the host lock.
export async function changeRates(st: NamespaceState, profile: Pick<Profile, 'rateDown' | 'rateUp'>): Promise<boolean> {
  const c = st.config;
  const down = profile.rateDown ?? c.rateDown;
  const up = profile.rateUp ?? c.rateUp;
  if (down === c.rateDown && up === c.rateUp) return false;
  if (c.mode === 'macvlan') throw new UserError(`${st.name} is a macvlan namespace, which has no host end to shape`, 'caps apply to --mode nat and bridge');
  const next = { ...c, ...(down ? { rateDown: down } : {}), ...(up ? { rateUp: up } : {}) };
  const step = rateStep(next);
  const journal = new Journal(paths.journal(st.name));
  const i = journal.entries().reduce((n, e) => Math.max(n, e.i + 1), 0);
  journal.intend(i, step);
  await applyRate(step);
  await crashPoint('apply', i);
  journal.done(i);
  st.config = next;
  writeState(st);
  return true;
}
