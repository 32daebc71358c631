import { execa } from 'execa';

// The one place the user's command is spawned, with execa (sys/wrapper.ts builds its argv).
// Its own module so that only exec and shell load execa, and they load it while their first
// tool runs (commands/exec.ts), not at start-up: every other tool goes through run.ts, whose
// runner needs no execa.
export function spawnInherited(argv: readonly string[], env: NodeJS.ProcessEnv, netnsFd?: number) {
  const [file, ...args] = argv;
  // cleanup: false — if nsroute itself is killed, the command keeps running (gc handles it).
  const stdio = netnsFd === undefined ? ('inherit' as const) : (['inherit', 'inherit', 'inherit', netnsFd] as const);
  return execa(file!, args, { stdio: stdio as 'inherit', reject: false, extendEnv: false, env, cleanup: false });
}
