// `nsroute check` for published ports (net/publish.ts): a TCP connection from the host to each
// published port must reach the namespace. Pure: judged from the probe's output (a node script
// run on the host, PUBLISH_PROBE_SCRIPT) and the namespace's listening sockets (`ss`).
import { parseListeners } from '../net/listeners.js';
import { publishSpec, type PublishedPort } from '../net/publish.js';
import type { NamespaceConfig } from '../plan/types.js';

export interface PortResult {
  publish: string; // [HOSTADDR:]HOSTPORT:PORT/PROTO
  target: string; // what the host connected to
  // reached: connected, and something listens on PORT inside; idle: nothing listens on PORT
  // inside (the path cannot be proven yet); failed: something listens, the connection failed;
  // untested: UDP (no handshake to prove a path).
  result: 'reached' | 'idle' | 'failed' | 'untested';
  error?: string;
}

export interface PublishCheck {
  id: 'publish';
  ok: boolean;
  leak: false;
  detail: string;
  ports: PortResult[];
}

// `node -e SCRIPT HOST:PORT...`: connects to each at once (3 s each), prints [{target, result}].
export const PUBLISH_PROBE_SCRIPT = [
  "const net = require('node:net');",
  'Promise.all(process.argv.slice(1).map((t) => new Promise((done) => {',
  "  const i = t.lastIndexOf(':');",
  '  const s = net.connect({ host: t.slice(0, i), port: Number(t.slice(i + 1)) });',
  "  const end = (result) => { s.destroy(); done({ target: t, result }); };",
  "  s.setTimeout(3000, () => end('ETIMEDOUT'));",
  "  s.on('connect', () => end('connected'));",
  "  s.on('error', (e) => end(e.code || String(e)));",
  '}))).then((x) => process.stdout.write(JSON.stringify(x) + "\\n"));',
].join('\n');

// Where the host connects to test a published port: its HOSTADDR, else 127.0.0.1.
export function probeTarget(p: PublishedPort): string {
  return `${p.hostAddr ?? '127.0.0.1'}:${p.hostPort}`;
}

export function tcpPublished(config: NamespaceConfig): PublishedPort[] {
  return (config.publish ?? []).filter((p) => p.proto === 'tcp');
}

export function checkPublish(config: NamespaceConfig, probe: { stdout: string } | undefined, nsListeners: { stdout: string } | undefined): PublishCheck {
  let answers: { target: string; result: string }[] = [];
  try {
    answers = probe ? (JSON.parse(probe.stdout) as typeof answers) : [];
  } catch {
    answers = [];
  }
  const listening = parseListeners(nsListeners?.stdout ?? '');
  const ports: PortResult[] = (config.publish ?? []).map((p) => {
    const publish = publishSpec(p);
    const target = probeTarget(p);
    if (p.proto === 'udp') return { publish, target, result: 'untested' };
    const inside = listening.some((l) => l.proto === 'tcp' && l.port === p.port && (l.addr === '*' || l.addr === config.nsAddress));
    const got = answers.find((a) => a.target === target)?.result ?? 'no answer from the probe';
    if (!inside) return { publish, target, result: 'idle' };
    return got === 'connected' ? { publish, target, result: 'reached' } : { publish, target, result: 'failed', error: got };
  });
  const failed = ports.filter((r) => r.result === 'failed');
  const ok = failed.length === 0;
  const word = (r: PortResult) =>
    r.result === 'reached' ? `${r.publish} reached from ${r.target}` : r.result === 'idle' ? `${r.publish} not tested (nothing listens on it inside yet)` : r.result === 'untested' ? `${r.publish} not tested (udp)` : `${r.publish}: ${r.target} failed (${r.error})`;
  const detail = ok
    ? ports.map(word).join('; ')
    : `${failed.map(word).join('; ')}; \`nsroute gc\` puts nsroute's table back whole if another tool changed it`;
  return { id: 'publish', ok, leak: false, detail, ports };
}
