import { execa, type ResultPromise } from 'execa';
import type { Account } from './users.js';

// The argv that runs CMD inside NAME: `ip netns exec` enters the namespace and bind-mounts
// /etc/netns/NAME/* over /etc (resolv.conf, gai.conf); setpriv switches user and reports
// 126/127 when the command cannot be run / is not found. Both exec in place, so the pid we
// get is the command's, and its exit status and signals pass straight through.
export function namespaceArgv(name: string, command: readonly string[], account?: Account): string[] {
  const priv = account
    ? [`--reuid=${account.uid}`, `--regid=${account.gid}`, account.groups.length > 0 ? `--groups=${account.groups.join(',')}` : '--clear-groups']
    : [];
  return ['ip', 'netns', 'exec', name, 'setpriv', ...priv, '--', ...command];
}

export function spawnInherited(argv: readonly string[], env: NodeJS.ProcessEnv): ResultPromise<{ stdio: 'inherit'; reject: false; extendEnv: false; env: NodeJS.ProcessEnv; cleanup: false }> {
  const [file, ...args] = argv;
  // cleanup: false — if nsroute itself is killed, the command keeps running (gc handles it).
  return execa(file!, args, { stdio: 'inherit', reject: false, extendEnv: false, env, cleanup: false });
}
