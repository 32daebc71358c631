import type { Account } from './users.js';

// The argv that runs CMD inside NAME: `ip netns exec` enters the namespace and bind-mounts
// /etc/netns/NAME/* over /etc (resolv.conf, gai.conf, nsswitch.conf); a small sh script
// hides the host's resolver sockets (below); setpriv switches user and reports 126/127 when
// the command cannot be run / is not found. All exec in place, so the pid we get is the
// command's, and its exit status and signals pass straight through.
// checkFd3: the child gets, as fd 3, the namespace nsroute checked (spawnInherited's netnsFd):
// the script refuses to run the command (exit 125) unless `ip netns exec` entered that very
// namespace, so a NAME removed and made again by someone else in between is never entered.
// mark (with checkFd3): a join without the host lock (state/joins.ts): the script runs the
// command only while the file mark.path holds the line mark.key, checked from inside NAME.
export function namespaceArgv(name: string, command: readonly string[], account?: Account, checkFd3 = false, mark?: { path: string; key: string }): string[] {
  const priv = account
    ? [`--reuid=${account.uid}`, `--regid=${account.gid}`, account.groups.length > 0 ? `--groups=${account.groups.join(',')}` : '--clear-groups']
    : [];
  const check = !checkFd3 ? ['-'] : mark ? ['3j', mark.path, mark.key] : ['3'];
  return ['ip', 'netns', 'exec', name, 'sh', '-c', HIDE_HOST_RESOLVERS, 'nsroute-exec', name, ...check, 'setpriv', ...priv, '--', ...command];
}

// Runs first inside the mount namespace `ip netns exec` made (as root, before setpriv):
// hides the host's resolver daemons, whose unix sockets cross network namespaces, so that
// lookups cannot leave by the host's routes: systemd-resolved's socket directory and nscd's
// get an empty tmpfs (nothing propagates back to the host: ip netns exec made / a slave).
// When /etc/resolv.conf is a symlink into resolved's directory (the usual stub setup), the
// bind mount of /etc/netns/NAME/resolv.conf landed on its target, so the namespace's file is
// copied into the new tmpfs at that name: the link keeps pointing at nsroute's file, and
// resolved rewriting its own files on the host does not reach the namespace.
// The part that hides the resolver daemons ($n: NAME), shared with cgroup mode's wrapper
// (apply/hostmode.ts ENTER_CGROUP), which runs in a mount namespace of its own too.
export const HIDE_RESOLVER_DAEMONS = [
  'if [ -d /run/systemd/resolve ] || [ -d /run/nscd ] || [ -d /var/run/nscd ]; then',
  '  r=$(readlink -f /etc/resolv.conf); seen=',
  '  for d in /run/systemd/resolve /run/nscd /var/run/nscd; do',
  '    [ -d "$d" ] || continue; t=$(readlink -f "$d")',
  '    case " $seen " in *" $t "*) continue;; esac; seen="$seen $t"',
  '    mount -t tmpfs -o mode=0755,size=256k nsroute "$t" || exit 125',
  '  done',
  '  case "$r" in /run/systemd/resolve/*) cp "/etc/netns/$n/resolv.conf" "$r" || exit 125;; esac',
  'fi',
];

export const HIDE_HOST_RESOLVERS = [
  'n=$1; c=$2; shift 2',
  'if [ "$c" = 3 ] || [ "$c" = 3j ]; then',
  '  [ /proc/self/ns/net -ef /proc/self/fd/3 ] || { echo "nsroute: $n is no longer the namespace nsroute set up; the command was not run" >&2; exit 125; }',
  '  exec 3<&-',
  'fi',
  // Already inside NAME (so a teardown that looks from now on finds this process): is NAME
  // still joinable, i.e. has no teardown removed its mark (state/joins.ts)?
  'if [ "$c" = 3j ]; then',
  '  t=; { read -r t <"$1"; } 2>/dev/null',
  '  [ "$t" = "$2" ] || { echo "nsroute: $n is being taken down; the command was not run" >&2; exit 125; }',
  '  shift 2',
  'fi',
  ...HIDE_RESOLVER_DAEMONS,
  'exec "$@"',
].join('\n');
