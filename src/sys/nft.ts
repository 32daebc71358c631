import { run } from './run.js';
import { probeNftTable } from './runner.js';
import { chainsSuffice } from '../net/fwholes.js';

// `nft -f -` is one transaction: a syntax or kernel error anywhere applies nothing.
export async function nftApply(ruleset: string): Promise<void> {
  await run(['nft', '-f', '-'], { input: ruleset });
}

// Asked by the tool runner of the kernel directly when there is one (sys/runner.ts: a netlink
// request instead of starting nft), by nft otherwise.
export async function nftTableExists(): Promise<boolean> {
  const probed = probeNftTable('inet', 'nsroute');
  const { exitCode } = probed ? await probed : await run(['nft', 'list', 'table', 'inet', 'nsroute'], { allowFail: true });
  return exitCode === 0;
}

// What planning needs of the ruleset (net/fwholes.ts: the forward chains of other tools and
// their rules, iptables-nft's filter tables, whether nsroute's table is there): the tables and
// chains alone when they say all of it, the whole ruleset otherwise. The whole ruleset holds
// every element of nsroute's sets: at 1000 namespaces nft took 46 ms to print it, 17 ms to
// list the chains.
export async function nftForwardFacts(): Promise<unknown> {
  const chains = await nftListJson('chains');
  return chains !== undefined && chainsSuffice(chains) ? chains : nftRulesetJson();
}

// The whole ruleset as JSON (undefined when nft fails): what repairs look at before acting.
export function nftRulesetJson(): Promise<unknown> {
  return nftListJson('ruleset');
}

// `nft -j list WHAT` parsed; undefined when nft fails or prints nothing usable.
async function nftListJson(what: 'ruleset' | 'chains'): Promise<unknown> {
  const r = await run(['nft', '-j', 'list', what], { allowFail: true });
  if (r.exitCode !== 0 || !r.stdout.trim()) return undefined;
  try {
    return JSON.parse(r.stdout);
  } catch {
    return undefined;
  }
}
