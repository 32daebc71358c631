import { run } from './run.js';

// `nft -f -` is one transaction: a syntax or kernel error anywhere applies nothing.
export async function nftApply(ruleset: string): Promise<void> {
  await run(['nft', '-f', '-'], { input: ruleset });
}

export async function nftTableExists(): Promise<boolean> {
  const { exitCode } = await run(['nft', 'list', 'table', 'inet', 'nsroute'], { allowFail: true });
  return exitCode === 0;
}
