// Test-only fault injection: NSROUTE_TEST_CRASH=PHASE:K makes nsroute SIGKILL itself right
// after step K of PHASE ('apply': bringing a namespace up; 'undo': teardown or rollback,
// K being the step's index in the journal). It proves that a crash at any step boundary is
// cleaned up by `nsroute gc` (test/integration/faults.test.ts). Unset in real use.
export type CrashPhase = 'apply' | 'undo';

export function crashPoint(phase: CrashPhase, k: number): void {
  const want = process.env.NSROUTE_TEST_CRASH;
  if (want && want === `${phase}:${k}`) process.kill(process.pid, 'SIGKILL');
}
