import { UserError } from '../errors.js';
import { listenerFor } from '../net/listeners.js';
import { publishClash, publishSpec, type PublishedPort } from '../net/publish.js';
import type { HostFacts, NamespaceConfig, Step } from './types.js';

// Traffic in (published ports) and shaped (bandwidth caps): what a namespace's config asks for,
// as steps after its link and firewall steps (plan.ts stepsFor), and the checks that need the
// host's facts. Pure.

// The published ports and caps of a profile, checked against the host: every HOSTADDR is an
// address of the host (or 127.0.0.1), and no host port is taken by another NAME or a host
// process. Throws a UserError naming who holds it; nothing has been changed at that point.
export function checkInbound(config: NamespaceConfig, facts: HostFacts, others: readonly NamespaceConfig[]): void {
  const ports = config.publish ?? [];
  for (const p of ports) {
    if (p.hostAddr && p.hostAddr !== '127.0.0.1' && !facts.addrs.some((a) => a.family === 4 && a.local === p.hostAddr)) {
      throw new UserError(`--publish ${publishSpec(p)}: ${p.hostAddr} is not an address of this host`, 'give one of the host\'s IPv4 addresses (`ip -4 addr`), or leave it out for all of them');
    }
    for (const o of others) {
      const taken = (o.publish ?? []).find((q) => publishClash(p, q));
      if (taken) throw new UserError(`--publish ${publishSpec(p)}: host port ${p.hostPort}/${p.proto} is already published by ${o.name} (${publishSpec(taken)})`, `pick another host port, or \`nsroute down ${o.name}\` first`);
    }
    const l = listenerFor(p, facts.listeners ?? []);
    if (l) {
      throw new UserError(
        `--publish ${publishSpec(p)}: a host process listens on ${l.addr === '*' ? '' : l.addr}:${l.port}/${l.proto}${l.process ? ` (${l.process})` : ''}`,
        'published ports take every connection to that port before the host sees it: pick another host port, or stop that server',
      );
    }
  }
}

export function inboundSteps(config: NamespaceConfig): Step[] {
  const out: Step[] = [];
  if (config.mode === 'nat' && config.publish && config.publish.length > 0) out.push(publishStep(config, config.publish));
  if (config.rateDown || config.rateUp) out.push(rateStep(config));
  return out;
}

export function publishStep(config: NamespaceConfig, ports: PublishedPort[]): Extract<Step, { kind: 'publish' }> {
  const u = config.uplink;
  return { kind: 'publish', iface: config.hostIface, nsAddress: config.nsAddress, ports, ...(u ? { uplink: { dev: u.dev, mark: u.mark } } : {}) };
}

export function rateStep(config: NamespaceConfig): Extract<Step, { kind: 'rate' }> {
  return {
    kind: 'rate',
    netns: config.name,
    hostIface: config.hostIface,
    nsIface: config.nsIface,
    ...(config.rateDown ? { down: config.rateDown } : {}),
    ...(config.rateUp ? { up: config.rateUp } : {}),
  };
}

