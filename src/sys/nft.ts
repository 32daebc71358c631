import { run } from './run.js';

// `nft -f -` is one transaction: a syntax or kernel error anywhere applies nothing.
export async function nftApply(ruleset: string): Promise<void> {
  await run(['nft', '-f', '-'], { input: ruleset });
}

export async function nftTableExists(): Promise<boolean> {
  const { exitCode } = await run(['nft', 'list', 'table', 'inet', 'nsroute'], { allowFail: true });
  return exitCode === 0;
}

// The whole ruleset as JSON (undefined when nft fails): what repairs look at before acting.
export async function nftRulesetJson(): Promise<unknown> {
  const r = await run(['nft', '-j', 'list', 'ruleset'], { allowFail: true });
  if (r.exitCode !== 0 || !r.stdout.trim()) return undefined;
  try {
    return JSON.parse(r.stdout);
  } catch {
    return undefined;
  }
}
