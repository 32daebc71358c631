// The root side's policy for a caller who entered through sudo (policy/entry.ts): which
// command, which NAME, which options. Runs before any command acts (cli.ts preAction).
import type { Command } from 'commander';
import { parse as parseToml } from 'smol-toml';
import { UserError } from '../errors.js';
import { liveHolders } from '../apply/views.js';
import { validateName } from '../net/names.js';
import { paths, configDir } from '../state/paths.js';
import { allStates } from '../state/store.js';
import { listDir } from '../sys/fsx.js';
import { readTrustedText } from '../sys/trusted-file.js';
import { allowedBy, parseAllow, type Allow } from './allow.js';
import { audit } from './audit.js';
import { callerContext, setVisibleNames, type CallerContext } from './context.js';
import { groupGid } from './groups.js';
import { quotaProblem, readQuota } from './quota.js';

// `move NAME PID` is allowed like these, with one more rule, checked by commands/move.ts: the
// process must be the caller's own (all of /proc/PID/status's Uid fields equal the caller's).
const NAMED: ReadonlySet<string> = new Set(['exec', 'shell', 'status', 'check']);
const OPEN: ReadonlySet<string> = new Set([...NAMED, 'list', 'move']);
// Options a caller may not give: each would choose where root routes, or whom it runs as.
const CLOSED_OPTIONS = ['via', 'dev', 'dns', 'subnet', 'ipv6', 'via6', 'mode', 'bridge', 'uplink', 'address', 'dhcp', 'user', 'asRoot'] as const;
const FLAG: Record<string, string> = { asRoot: '--as-root' };

// The allow key of NAME's profile (undefined: no profile, or no key: nobody).
export function profileAllow(name: string): Allow | undefined {
  const file = paths.profile(name);
  const text = readTrustedText(file, 'profile');
  if (text === undefined) return undefined;
  let doc: Record<string, unknown>;
  try {
    doc = parseToml(text) as Record<string, unknown>;
  } catch {
    throw new UserError(`profile ${file} is not valid TOML`, 'ask root to fix it');
  }
  return doc.allow === undefined ? undefined : parseAllow(doc.allow, `profile ${file}`);
}

async function whyAllowed(c: CallerContext, name: string): Promise<string | undefined> {
  const allow = profileAllow(name);
  const gids = new Map<string, number | undefined>();
  for (const g of allow?.groups ?? []) gids.set(g, await groupGid(g));
  return allowedBy({ uid: c.uid, name: c.name, gids: c.gids }, allow, (g) => gids.get(g));
}

// NAMEs whose profiles allow the caller (a broken profile allows nobody).
async function allowedNames(c: CallerContext): Promise<Set<string>> {
  const out = new Set<string>();
  for (const f of listDir(configDir())) {
    const m = /^([A-Za-z0-9][A-Za-z0-9_-]{0,63})\.toml$/.exec(f);
    if (!m) continue;
    try {
      if (await whyAllowed(c, m[1]!)) out.add(m[1]!);
    } catch {
      /* refused below if asked for by name */
    }
  }
  return out;
}

function held(c: CallerContext): { names: string[]; commands: number } {
  const names: string[] = [];
  let commands = 0;
  for (const st of allStates()) {
    const mine = liveHolders(st).filter((h) => h.kind !== 'process' && h.user === c.name);
    if (mine.length > 0) names.push(st.name);
    commands += mine.length;
  }
  return { names, commands };
}

export async function enforceCaller(action: Command): Promise<void> {
  const c = callerContext();
  if (!c) return;
  const verb = action.name();
  // move: NAME is its first argument; move --out (own processes back out, checked by
  // commands/move.ts) names none and needs no NAME's allowance.
  const moveOut = verb === 'move' && (action.opts() as { out?: boolean }).out === true;
  const name = verb === 'move' ? (moveOut ? undefined : String((action.processedArgs[0] as string[] | undefined)?.[0] ?? '')) : NAMED.has(verb) ? String(action.processedArgs[0] ?? '') : undefined;
  const refuse = async (why: string, hint: string): Promise<never> => {
    await audit(c, verb, name, 'refused', why);
    throw new UserError(why, hint);
  };
  if (!OPEN.has(verb)) await refuse(`nsroute ${verb} needs root; users may only run exec, shell, list, status, check and move`, `ask root to run \`nsroute ${verb}\``);
  const opts = action.opts() as Record<string, unknown>;
  for (const key of CLOSED_OPTIONS) {
    if (opts[key] !== undefined && opts[key] !== false && !(Array.isArray(opts[key]) && (opts[key] as unknown[]).length === 0)) {
      const flag = FLAG[key] ?? `--${key}`;
      await refuse(
        `${flag} is for root only: ${key === 'user' || key === 'asRoot' ? 'your command runs as you' : "NAME's profile decides where it routes"}`,
        key === 'user' || key === 'asRoot' ? `leave ${flag} out` : `leave ${flag} out, or ask root to change the profile`,
      );
    }
  }
  if (moveOut) {
    await audit(c, verb, undefined, 'allowed', 'own processes out of their NAME');
    return;
  }
  if (verb === 'list') {
    const names = await allowedNames(c);
    setVisibleNames((n) => names.has(n));
    await audit(c, verb, undefined, 'allowed', `shows ${names.size} NAME(s) allowed to ${c.name}`);
    return;
  }
  try {
    validateName(name!);
  } catch (e) {
    await refuse((e as Error).message, (e as UserError).hint ?? '');
  }
  let why: string | undefined;
  try {
    why = await whyAllowed(c, name!);
  } catch (e) {
    await refuse(`${name} cannot be used: ${(e as Error).message}`, 'ask root to fix its profile');
  }
  if (!why) {
    await refuse(
      `you (${c.name}) may not use ${name}: its profile ${paths.profile(name!)} does not allow you or a group of yours`,
      `root can grant it with \`nsroute allow ${name} ${c.name}\``,
    );
  }
  if (verb === 'exec' || verb === 'shell') {
    const problem = quotaProblem(readQuota(), held(c), name!);
    if (problem) await refuse(problem, 'end one of them first, or ask root to raise the limit in /etc/nsroute/nsroute.conf');
  }
  await audit(c, verb, name, 'allowed', `by ${why}`);
}
