import { constants } from 'node:os';
import { HostError, UserError } from '../errors.js';
import { closeSync } from 'node:fs';
import { isLastExec, openOwnNetns, userProcesses } from '../apply/views.js';
import { readState, type NamespaceState } from '../state/store.js';
import type { RouteOptions } from '../profile/profile.js';
import { namespaceArgv } from '../sys/wrapper.js';
import type { spawnInherited } from '../sys/command.js';
import { joinWithoutLock } from '../apply/join.js';
import { crashPoint } from '../apply/crash.js';
import { processStartTime } from '../sys/proc.js';
import { lookupAccount, type Account } from '../sys/users.js';
import type { Holder } from '../state/store.js';
import { loadProfile, requireRoot } from './options.js';
import { callerContext } from '../policy/context.js';
import { hostModeHooks } from '../apply/hostmode.js';
import { readHostFactsEarly } from '../sys/hostfacts.js';
import { loadIdsOrSayWhy } from '../sys/ids.js';

export interface ExecOptions extends RouteOptions {
  user?: string;
  asRoot?: boolean;
}

// A uid or gid as sudo writes it: decimal, below (uid_t)-1.
const ID_RE = /^(0|[1-9][0-9]{0,9})$/;
const ID_MAX = 4294967294;

function parseId(text: string): number | undefined {
  return ID_RE.test(text) && Number(text) <= ID_MAX ? Number(text) : undefined;
}

// A user name as useradd accepts it (or a numeric uid); never empty, never starting with "-"
// (it is passed to getent and id).
const USER_RE = /^[A-Za-z0-9_.][A-Za-z0-9_.-]{0,255}\$?$/;

// Who the command runs as: --as-root, --user, else the user who ran sudo, else root.
// Fails closed: an empty --user or a SUDO_UID/SUDO_GID that is not a number is refused, never
// read as "no user given" (which would run the command as root).
export async function targetAccount(opts: ExecOptions, env: NodeJS.ProcessEnv = process.env): Promise<{ account: Account; switchUser: boolean }> {
  if (opts.asRoot && opts.user !== undefined) throw new UserError('--user and --as-root exclude each other', 'pick one');
  if (opts.user !== undefined) {
    if (!USER_RE.test(opts.user)) throw new UserError(`--user: ${JSON.stringify(opts.user)} is not a user name`, 'give a user name or a numeric uid (`getent passwd` lists users)');
    const account = await lookupAccount(opts.user);
    if (!account) throw new UserError(`user ${JSON.stringify(opts.user)} does not exist`, '`getent passwd` lists users');
    return { account, switchUser: account.uid !== 0 };
  }
  if (!opts.asRoot && env.SUDO_UID !== undefined) {
    const uid = parseId(env.SUDO_UID);
    if (uid === undefined) {
      throw new UserError(`SUDO_UID=${JSON.stringify(env.SUDO_UID)} is not a user id, so it is unclear whom to run the command as`, 'unset it, or pass --user USER or --as-root');
    }
    const gid = env.SUDO_GID === undefined ? undefined : parseId(env.SUDO_GID);
    if (env.SUDO_GID !== undefined && gid === undefined) {
      throw new UserError(`SUDO_GID=${JSON.stringify(env.SUDO_GID)} is not a group id`, 'unset it, or pass --user USER or --as-root');
    }
    if (uid !== 0) {
      const found = await lookupAccount(String(uid));
      const account: Account = found ?? { name: env.SUDO_USER || String(uid), uid, gid: gid ?? uid, home: '/', shell: '/bin/sh', groups: [] };
      if (gid !== undefined && gid !== account.gid) account.gid = gid;
      if (!account.groups.includes(account.gid)) account.groups = [account.gid, ...account.groups];
      return { account, switchUser: true };
    }
  }
  const root = (await lookupAccount('0')) ?? { name: 'root', uid: 0, gid: 0, home: '/root', shell: '/bin/sh', groups: [0] };
  return { account: root, switchUser: false };
}

export function exitCodeOf(result: { exitCode?: number; signal?: string }): number {
  if (result.signal) return 128 + (constants.signals[result.signal as NodeJS.Signals] ?? 0);
  return result.exitCode ?? 125;
}

// A command that ends often leaves children that end a moment later (a shell killed while its
// `sleep` runs). When this exec is the last one holding NAME, give them a second before
// deciding: whatever still runs after that keeps the namespace up (never torn down under a
// running program) and is reported.
const SETTLE_MS = 1000;

async function settle(name: string, st: NamespaceState | undefined, self: Holder): Promise<void> {
  if (!isLastExec(st, self)) return;
  const deadline = Date.now() + SETTLE_MS;
  while (userProcesses(name).length > 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
}

// How long a command runs before exec starts its monitors (ip monitor, nft monitor).
const MONITOR_AFTER_MS = 300;

const FORWARDED: NodeJS.Signals[] = ['SIGINT', 'SIGTERM', 'SIGHUP'];

// The planner and executors, loaded only by an exec that takes the host lock (to bring NAME up
// or leave it): a hot exec joins without them (apply/join.ts).
const lifecycle = () => import('../apply/lifecycle.js');

// exec and shell: bring NAME up (or join it), run the command inside as the chosen user,
// forward signals, then leave; the last holder of an ephemeral namespace tears it down.
// Returns the command's exit status (128+N for signal N).
export async function runInNamespace(name: string, command: readonly string[] | 'login-shell', opts: ExecOptions): Promise<number> {
  requireRoot();
  const profile = loadProfile(name, opts);
  const { account, switchUser } = await targetAccount(opts);
  const argv = command === 'login-shell' ? [account.shell] : [...command];
  if (argv.length === 0) throw new UserError('no command given', `put it after --, e.g. nsroute exec ${name} -- curl example.org`);

  // From here on, signals never interrupt nsroute mid-change: they are remembered (before
  // the command starts) or forwarded to it, and teardown always runs to the end.
  let child: ReturnType<typeof spawnInherited> | undefined;
  let earlySignal: NodeJS.Signals | undefined;
  const onSignal = (sig: NodeJS.Signals) => {
    if (!child) {
      earlySignal ??= sig;
      return;
    }
    if (child.exitCode !== null || child.signalCode !== null) return;
    // A terminal's ^C already reaches the whole foreground process group, command included.
    if (sig === 'SIGINT' && process.stdin.isTTY) return;
    child.kill(sig);
  };
  for (const sig of FORWARDED) process.on(sig, onSignal);
  // A join record (state/joins.ts) may have been read by a `down --force` that signals this
  // exec a moment after its command ended, also one whose lock-free join fell back to the
  // lock (the record was written, then removed): the handler stays to the end, and the exec
  // exits with its own status rather than die of that late signal.
  const holder: Holder = {
    pid: process.pid,
    startTime: processStartTime(process.pid) ?? 0,
    command: argv,
    user: account.name,
    since: new Date().toISOString(),
  };
  // Into a NAME that looks new: the host is read now, while the code below loads.
  const early = readHostFactsEarly(name, profile.via, profile.ipv6 === 'nat') ?? null;
  // What spawns the command and keeps its bind mounts (execa and its dependencies) is loaded
  // now, so that a hot exec evaluates it while its nft look runs in the runner instead of
  // before: joinWithoutLock reaches that tool without yielding.
  const spawning = Promise.all([import('../sys/command.js'), import('../sys/rebind.js')]);
  spawning.catch(() => undefined); // awaited below; a failure is reported there
  // Into a persistent NAME the host watcher keeps right: no lock (apply/join.ts; the
  // command's wrapper refuses it once a teardown has begun, state/joins.ts). Otherwise bring
  // NAME up or join it under the lock.
  const joined = await joinWithoutLock(profile, holder);
  // The id bases (cli.ts leaves them to exec), before anything plans: only when NAME is created
  // or joined under the lock, while the host read above runs. A lock-free join plans nothing,
  // and at 1000 NAMEs reading them (every state's uplink) was most of a hot exec.
  if (!joined) loadIdsOrSayWhy();
  const { state } = joined ?? (await (await lifecycle()).bringUp({ profile, persistent: false, holder, early }));
  if (joined) await crashPoint('join', 0);
  // A host mode's NAME has no namespace: its hooks say how a command becomes NAME's.
  const hostMode = hostModeHooks(state.config.mode);
  let netnsFd = joined ? joined.netnsFd : hostMode ? undefined : openOwnNetns(name);
  const closeNetnsFd = () => {
    if (netnsFd !== undefined) closeSync(netnsFd);
    netnsFd = undefined;
  };
  const leave = async () => {
    closeNetnsFd();
    if (joined) joined.leave();
    else await (await lifecycle()).release(name, holder);
  };
  let code: number;
  try {
    const [{ spawnInherited }, { keepBindMounts }] = await spawning;
    if (earlySignal) {
      code = 128 + (constants.signals[earlySignal] ?? 0);
    } else {
      const env: NodeJS.ProcessEnv = {
        ...process.env,
        HOME: account.home,
        USER: account.name,
        LOGNAME: account.name,
        SHELL: account.shell,
        NSROUTE_NAMESPACE: name,
      };
      // A user's command does not see root's settings (policy/entry.ts cleaned the rest).
      if (callerContext()) for (const k of Object.keys(env)) if (k.startsWith('NSROUTE_') && k !== 'NSROUTE_NAMESPACE') delete env[k];
      if (netnsFd === undefined && !hostMode) throw new HostError(`${name} is no longer the namespace nsroute set up (another tool deleted or replaced it)`, `\`nsroute down ${name}\` removes what is nsroute's`);
      const target = switchUser ? account : undefined;
      child = spawnInherited(hostMode ? hostMode.commandArgv!(state.config, argv, target) : namespaceArgv(name, argv, target, true, joined?.mark), env, netnsFd);
      closeNetnsFd(); // the wrapper has its copy (and closes it before the command starts)
      // While the command runs: bind mounts kept in place, the uplink's routes put back
      // when the link returns (kill switch until then), a flushed firewall restored. A
      // persistent namespace has the host's watcher for that (started by `up`).
      const watched = state.persistent && !state.noWatch;
      const keepers = [...(child.pid ? [keepBindMounts(name, child.pid)] : [])];
      // The monitors (two more processes) only for a command that runs a while: the kill
      // switch holds without them, and their first look covers what changed before they ran.
      let ended = false;
      const monitorLater =
        state.config.uplink && !watched
          ? setTimeout(() => {
              import('../apply/watch.js').then(
                ({ watchNamespaces }) => {
                  if (!ended) keepers.push(watchNamespaces({ names: [name] }));
                },
                () => undefined, // the kill switch holds without the monitors
              );
            }, MONITOR_AFTER_MS)
          : undefined;
      const result = await child.finally(() => {
        ended = true;
        clearTimeout(monitorLater);
        keepers.forEach((k) => k.stop());
      });
      if (result.exitCode === undefined && !result.signal) {
        throw new Error(`could not start ${argv[0]}: ${result.shortMessage ?? 'unknown error'}`);
      }
      code = exitCodeOf(result);
    }
  } catch (e) {
    await leave().catch(() => undefined);
    throw e;
  }
  // The command ran: its status stands even if teardown fails (as with `docker run --rm`),
  // but the failure is reported with the way to retry it.
  try {
    closeNetnsFd();
    if (joined) {
      joined.leave(); // persistent: nothing to take down
      return code;
    }
    const life = await lifecycle();
    const now = readState(name);
    life.prepareRelease(now, holder);
    await crashPoint('release', 0);
    await settle(name, now, holder);
    const { keptFor } = await life.release(name, holder);
    if (keptFor.length > 0) {
      process.stderr.write(
        `nsroute: ${name} stays up while processes started in it still run (${keptFor.join(' ')}); ` +
          'the next nsroute command on it, or `nsroute gc`, removes it after they end\n',
      );
    }
  } catch (e) {
    process.stderr.write(`nsroute: leaving ${name} failed: ${(e as Error).message}\nnsroute: run \`nsroute down ${name}\` to retry the teardown\n`);
  }
  return code;
}
