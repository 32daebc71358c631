import { run, runJson } from './run.js';
import { SysError } from '../errors.js';
import { join } from 'node:path';
import { NETNS_RUN_DIR } from '../state/paths.js';
import { parseRoutes, parseRules } from '../net/iproute-json.js';

// iproute2, batched: one `ip -batch -` per namespace side (PLATFORM.md: ~3 ms for 100 lines).
// `ip -batch` is NOT atomic: lines before a failing one stay applied. Callers journal the
// step before running its batch, and undo is idempotent, so a partial batch is undone too.
// Inside a namespace through `nsenter --net`, not `ip -n`: `ip -n` also unshares the mount
// namespace (to remount /sys), which copies every mount, one per namespace in /run/netns:
// 6.5-10.7 ms against 4-5 ms with 1000 namespaces (measured). Links, addresses and routes
// need only the network namespace.
export async function ipBatch(lines: readonly string[], netns?: string, family?: 4 | 6): Promise<void> {
  if (lines.length === 0) return;
  const ip = ['ip', ...(family ? [`-${family}`] : []), '-batch', '-'];
  await run(netns ? ['nsenter', `--net=${join(NETNS_RUN_DIR, netns)}`, '--', ...ip] : ip, { input: lines.join('\n') + '\n' });
}

// The same, going on past failing lines (`ip -force`); for repairs, where "exists" and "link
// is down" are expected answers. All lines must be of FAMILY when it is given: `ip -4 -batch`
// treats an IPv6 line as fatal even with -force (PLATFORM.md). Returns what ip said about the
// lines that failed (undefined: none did), for callers that verify their result.
export async function ipBatchForce(lines: readonly string[], family?: 4 | 6): Promise<string | undefined> {
  if (lines.length === 0) return undefined;
  const r = await run(['ip', ...(family ? [`-${family}`] : []), '-force', '-batch', '-'], { input: lines.join('\n') + '\n', allowFail: true });
  return r.exitCode === 0 ? undefined : r.stderr.trim().split('\n').join('; ') || `exit ${r.exitCode}`;
}

// Splits what `ip -j -batch` prints (one JSON array per line that succeeded, concatenated)
// into its arrays; strings are skipped whole, so an alias holding "][" cannot cut one.
// iproute2 ends each array with a newline, and JSON has no raw newline inside a string: when
// every line parses, the lines are the arrays (at 1000 NAMEs, 2 MB: the scan below took
// ~30 ms); any other layout is scanned.
export function splitJsonArrays(text: string): unknown[] {
  try {
    return text.split('\n').flatMap((line) => (line.trim() === '' ? [] : [JSON.parse(line) as unknown]));
  } catch {
    return scanJsonArrays(text);
  }
}

function scanJsonArrays(text: string): unknown[] {
  const out: unknown[] = [];
  let depth = 0;
  let start = -1;
  let inString = false;
  for (let i = 0; i < text.length; i++) {
    const c = text[i];
    if (inString) {
      if (c === '\\') i++;
      else if (c === '"') inString = false;
      continue;
    }
    if (c === '"') inString = true;
    else if (c === '[' || c === '{') {
      if (depth === 0) start = i;
      depth++;
    } else if (c === ']' || c === '}') {
      depth--;
      if (depth === 0 && start >= 0) {
        out.push(JSON.parse(text.slice(start, i + 1)));
        start = -1;
      }
    }
  }
  if (depth !== 0) throw new SyntaxError('ip -j -batch: truncated JSON');
  return out;
}

// The numbers of the batch lines ip reported as failed ("Command failed -:N", 1-based).
export function failedBatchLines(stderr: string): number[] {
  return [...stderr.matchAll(/Command failed -:(\d+)/g)].map((m) => Number(m[1]));
}

// Several read-only `ip -j` commands in one process: `opts` are global (`-4 -d -N` are not
// accepted on a line). With `-force` a failing line prints nothing: the answer of each line is
// placed by the line numbers ip names on stderr, undefined for a line that failed.
export async function ipJsonBatch(lines: readonly string[], opts: readonly string[] = []): Promise<(unknown[] | undefined)[]> {
  if (lines.length === 0) return [];
  const r = await run(['ip', '-j', ...opts, '-force', '-batch', '-'], { input: lines.join('\n') + '\n', allowFail: true });
  const failed = new Set(failedBatchLines(r.stderr));
  const arrays = splitJsonArrays(r.stdout);
  if (arrays.length + failed.size !== lines.length) {
    throw new SysError(`ip -j -batch: ${arrays.length} answers and ${failed.size} failures for ${lines.length} lines: ${r.stderr.trim()}`, ['ip', '-j', ...opts, '-batch', '-'], r.exitCode, r.stderr);
  }
  let next = 0;
  return lines.map((_, i) => (failed.has(i + 1) ? undefined : (arrays[next++] as unknown[])));
}

export async function ipJson(args: readonly string[]): Promise<unknown> {
  return runJson(['ip', '-j', ...args]);
}

// Deleting something already gone counts as success: undo must be idempotent.
export const GONE = /Cannot find device|No such file or directory|No such process|does not exist|Invalid argument.*not found|RTNETLINK answers: No such/i;

// Whether what `ip -force -batch` said (ipBatchForce) is only about objects already gone.
export function onlyGone(failed: string): boolean {
  return failed.split('; ').every((l) => /^Command failed -:\d+$/.test(l) || GONE.test(l));
}

export async function ipIgnoringGone(args: readonly string[]): Promise<void> {
  try {
    await run(['ip', ...args]);
  } catch (e) {
    if (e instanceof SysError && GONE.test(e.stderr)) return;
    throw e;
  }
}

export async function netnsAdd(name: string): Promise<void> {
  await run(['ip', 'netns', 'add', name]);
}

// What says whose a host link is: its alias (nsroute's owner tag, net/tag.ts) and, for a veth,
// the id (in this namespace) of the namespace its peer is in. undefined: no such link.
export async function linkOwner(dev: string): Promise<{ alias?: string; peerNetnsId?: number } | undefined> {
  const r = await run(['ip', '-j', 'link', 'show', 'dev', dev], { allowFail: true });
  if (r.exitCode !== 0) return undefined;
  const l = (JSON.parse(r.stdout || '[]') as Record<string, unknown>[])[0];
  if (!l) return undefined;
  return { ...(typeof l.ifalias === 'string' ? { alias: l.ifalias } : {}), ...(typeof l.link_netnsid === 'number' ? { peerNetnsId: l.link_netnsid } : {}) };
}

// The id this namespace gave the named namespace (what a veth's link_netnsid refers to).
export async function netnsId(name: string): Promise<number | undefined> {
  const list = (await ipJson(['netns', 'list']).catch(() => [])) as { name?: string; id?: number }[];
  const id = list.find((n) => n.name === name)?.id;
  return typeof id === 'number' ? id : undefined;
}

export async function netnsDel(name: string): Promise<void> {
  await ipIgnoringGone(['netns', 'del', name]);
}

export async function routeGet(ip: string): Promise<unknown> {
  const { stdout, exitCode } = await run(['ip', '-j', 'route', 'get', ip], { allowFail: true });
  return exitCode === 0 && stdout.trim() ? JSON.parse(stdout) : [];
}

// The owner tag of a veth nsroute made (net/tag.ts).
export async function setLinkAlias(dev: string, alias: string): Promise<void> {
  await run(['ip', 'link', 'set', 'dev', dev, 'alias', alias]);
}

// Each uplink table still has its default route (not only the unreachable fallback) and its
// fwmark rule: what the watcher looks at before taking the lock to repair.
export async function uplinkRoutesIntact(tables: readonly number[]): Promise<boolean> {
  if (tables.length === 0) return true;
  const [rules, ...routes] = await Promise.all([
    ipJson(['-4', '-N', 'rule', 'show']).then(parseRules, () => []),
    ...tables.map((t) => ipJson(['-4', '-N', 'route', 'show', 'table', String(t)]).then(parseRoutes, () => [])),
  ]);
  return tables.every((t, i) => rules.some((r) => r.table === t) && (routes[i] ?? []).some((r) => r.dst === 'default' && r.type === 'unicast'));
}
