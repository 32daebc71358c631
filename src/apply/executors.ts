import { join } from 'node:path';
import { chmodSync, existsSync, lstatSync, mkdirSync, readFileSync, statSync, type Stats } from 'node:fs';
import { UserError } from '../errors.js';
import type { HostFacts, NamespaceConfig, Step, Uplink } from '../plan/types.js';
import { nsConfigLanLines, nsConfigLines, uplinkRoute6Lines, uplinkRouteLines, uplinkRuleArgs, vethBridgeLines, vethLines, vethRouteLines } from '../plan/plan.js';
import { disableIpv6In, giveBack, readTakeover, startDhcp, stopDhcp, takeOver } from '../sys/lan.js';
import { dhcpScript } from '../net/dhcp.js';
import { forwardChains, hasNsrouteTable, renderHoleInserts, xtablesHolesMissing } from '../net/fwholes.js';
import { ensureForwardHoles, legacyFilterTables, removeForwardHoles } from '../sys/iptables.js';
import { nftHasMember, nftHasReplies, renderNftAdd, renderNftDelete, renderNftRuleset, type NftMember, type NftReplies } from '../net/nft.js';
import { hasNetns } from './hostmode.js';
import { ipBatch, ipBatchForce, ipIgnoringGone, ipJson, linkOwner, netnsAdd, netnsDel, netnsId } from '../sys/ip.js';
import { netnsInode } from '../sys/proc.js';
import { parseTag } from '../net/tag.js';
import type { NetnsOwnership } from './journal.js';
import { nftApply, nftRulesetJson } from '../sys/nft.js';
import { readForwarding6Sysctls, readForwardingSysctls, srcValidMarkPath, tryRead, tryRead6, write as writeSysctl, write6 } from '../sys/sysctl.js';
import { isTrustedSubdir, listDir, readRegularFile, readTrustedFile, removeDirIfEmpty, removeIfExists, writeFileAtomic } from '../sys/fsx.js';
import { ensureLibDir, ensureLibSubdir } from '../state/dirs.js';
import { addUplinkRoutes } from './uplink-wait.js';
import { parseRules } from '../net/iproute-json.js';
import { currentGuardRules, guardSyncLines, renderGuardRules, type GuardRules } from '../plan/guard.js';
import { NETNS_RUN_DIR, netnsEtcDir, paths } from '../state/paths.js';
import { addPublished, applyRate, enableLocalnet, removePublished, undoRate } from './inbound.js';
import { hasPublishObjects, publishedIn } from '../net/publish.js';
import { readHostState, writeHostState } from '../state/store.js';

// What a step needs to know beyond itself: its own namespace and the others (for the objects
// several namespaces share: nft table, uplink tables, forwarding).
export interface StepContext {
  name: string;
  // Needed to apply steps; undo works without it (gc undoes journals whose state is lost).
  self?: NamespaceConfig;
  others: () => NamespaceConfig[];
  // Undo: which namespace NAME's journal created (journal.ts). Absent: by name, as before.
  netns?: NetnsOwnership;
}

// One line on stderr when undo leaves something alone that is not (provably) nsroute's.
function notice(text: string): void {
  process.stderr.write(`nsroute: ${text}\n`);
}

// Whether /run/netns/NAME is the namespace NAME's journal created: 'yes', 'replaced' (another
// namespace has the name now), 'unknown' (nothing recorded proves it), 'gone'.
export function netnsIsOurs(netns: string, owner: NetnsOwnership | undefined): 'yes' | 'replaced' | 'unknown' | 'gone' {
  const now = netnsInode(join(NETNS_RUN_DIR, netns));
  if (now === undefined) return 'gone';
  if (owner === undefined || owner === 'legacy') return 'yes';
  if (owner === 'unknown' || owner === 'none') return 'unknown';
  if (owner.ino !== now) return 'replaced';
  // The same inode number again: a namespace made after ours was freed; the ctime tells.
  return owner.ctime === undefined || nsfsCtime(join(NETNS_RUN_DIR, netns)) === owner.ctime ? 'yes' : 'replaced';
}

// Undo of a veth nsroute made: its host end goes only if its owner tag names NAME, or (a crash
// between creating it and tagging it) it has no tag and its peer is in NAME's own namespace.
async function removeOwnVeth(hostIface: string, netns: string, owner: NetnsOwnership | undefined): Promise<void> {
  const link = await linkOwner(hostIface);
  if (!link) return;
  let ours = parseTag(link.alias)?.name === netns;
  if (!ours && link.alias === undefined && netnsIsOurs(netns, owner) === 'yes') {
    const id = await netnsId(netns);
    ours = id !== undefined && link.peerNetnsId === id;
  }
  if (!ours) {
    notice(`left interface ${hostIface} alone: it is not ${netns}'s (${link.alias ? `its owner tag is "${link.alias}"` : 'it has no nsroute owner tag'})`);
    return;
  }
  return ipIgnoringGone(['link', 'del', 'dev', hostIface]);
}

// The nft table's elements for one namespace (its nft-member step).
function memberOf(step: Extract<Step, { kind: 'nft-member' }>): NftMember {
  return { iface: step.iface, subnet: step.subnet, ...(step.subnet6 ? { subnet6: step.subnet6 } : {}), ...(step.mark !== undefined ? { mark: step.mark } : {}) };
}

// The whole table, from every namespace (the fallback of the per-namespace transactions).
// selfPublish false: this namespace's published ports left out (its nft-member step renders
// the table before its publish step is journaled; that step adds them).
function nftRenderAll(ctx: StepContext, withSelf: boolean, selfPublish = true): Promise<void> {
  const self = withSelf && ctx.self ? [selfPublish ? ctx.self : { ...ctx.self, publish: undefined }] : [];
  const all = [...ctx.others(), ...self];
  return nftApply(renderNftRuleset(nftMembers(all), nftReplies(all)));
}

// O(1) in the number of namespaces: this namespace's elements in one transaction; the table
// rendered whole only when that fails (no table yet, or a flushed firewall).
async function nftAddMember(step: Extract<Step, { kind: 'nft-member' }>, ctx: StepContext): Promise<void> {
  try {
    await nftApply(renderNftAdd(memberOf(step)));
  } catch {
    await nftRenderAll(ctx, true, false);
  }
}

// Exactly this namespace's elements go; with the last namespace the table goes. When the
// deletion fails (an element missing: a crash before it was added, or someone's edit), the
// table is rendered whole from the namespaces that remain, which is exact either way.
async function nftDeleteMember(step: Extract<Step, { kind: 'nft-member' }>, ctx: StepContext): Promise<void> {
  const rest = nftMembers(ctx.others());
  const replies = nftReplies(ctx.others());
  if (rest.length === 0) return nftApply(renderNftRuleset([], replies));
  try {
    await nftApply(renderNftDelete(memberOf(step)));
  } catch {
    await nftApply(renderNftRuleset(rest, replies));
  }
}

// The replies policies (--mode replies) nsroute's table holds besides the namespaces.
export function nftReplies(configs: readonly NamespaceConfig[]): NftReplies[] {
  return configs.flatMap((c) => (c.mode === 'replies' && c.uplink ? [{ dev: c.uplink.dev, mark: c.uplink.mark }] : []));
}

export function nftMembers(configs: readonly NamespaceConfig[]): NftMember[] {
  return configs
    .filter((c) => c.mode === 'nat')
    .map((c) => ({ iface: c.hostIface, subnet: c.subnet, mark: c.uplink?.mark, ...(c.ipv6 === 'nat' && c.subnet6 ? { subnet6: c.subnet6 } : {}), ...publishOf(c) }));
}

// A namespace's published ports as its part of the table (net/publish.ts).
function publishOf(c: NamespaceConfig): Pick<NftMember, 'publish'> {
  if (!c.publish || c.publish.length === 0) return {};
  return { publish: { nsAddress: c.nsAddress, ports: c.publish, ...(c.uplink ? { uplink: { dev: c.uplink.dev, mark: c.uplink.mark } } : {}) } };
}

// Files nsroute writes carry this first line; undo only deletes files that still carry it,
// so undoing twice never removes a file the user put back.
const OURS = '# Written by nsroute';
const CREATED_DIR_MARK = '.created-etc-netns-dir';
const OWNED_MARK = '.nsroute-files';

// Only a regular file can be ours (never followed through a symlink).
function isOurs(path: string): boolean {
  try {
    return readRegularFile(path)?.startsWith(OURS) ?? false;
  } catch {
    return false; // absent, unreadable: not ours
  }
}

function lstatOrUndefined(path: string): Stats | undefined {
  try {
    return lstatSync(path);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw e;
  }
}

// What nsroute may write under /etc/netns/NAME, decided before the first change: `ip netns
// exec` bind-mounts those files over /etc, so a symlink there (to a directory, or dangling),
// a file where the directory should be, or a directory where resolv.conf should be would
// make nsroute write through a link it did not make, or fail half-way with a raw EISDIR.
// Throws a UserError naming the path and the fix.
export function checkNetnsFiles(netns: string, files: readonly string[]): void {
  const base = '/etc/netns';
  const dir = netnsEtcDir(netns);
  const refuse = (path: string, what: string, fix: string) => {
    throw new UserError(`${path} ${what}; nsroute writes ${netns}'s resolv.conf there and never writes through a link or over something it did not make`, fix);
  };
  for (const [path, isDir] of [[base, true], [dir, true], ...files.map((f) => [join(dir, f), false] as const)] as const) {
    const st = lstatOrUndefined(path);
    if (!st) continue;
    if (st.isSymbolicLink()) refuse(path, `is a symbolic link${existsSync(path) ? '' : ' to nothing'}`, `remove it (\`rm ${path}\`)${isDir && path === dir ? ', or pick another name' : ''}`);
    if (isDir && !st.isDirectory()) refuse(path, 'is not a directory', `move it away${path === dir ? ', or pick another name' : ''}`);
    if (!isDir && !st.isFile()) refuse(path, st.isDirectory() ? 'is a directory' : 'is not a regular file', `move it away (\`mv ${path} ${path}.old\`)`);
    if (isDir && (st.uid !== 0 || st.mode & 0o022)) refuse(path, st.uid !== 0 ? `is owned by uid ${st.uid}, not root` : 'is writable by others', `\`chown root:root ${path} && chmod go-w ${path}\``);
  }
}

// Puts /etc/netns/NAME back as it was: the user's saved files return, ours go, and the
// directory goes if nsroute created it. Idempotent; also used by gc for a NAME whose state
// is gone, with the files its record lists. Nothing is written through a symlink: when
// /etc/netns/NAME is not a real directory any more, nothing of nsroute's can be in it, and
// the user's saved files stay in the record.
export function undoNetnsFiles(netns: string, files: readonly string[]): void {
  const dir = netnsEtcDir(netns);
  const record = paths.files(netns);
  const dirSt = lstatOrUndefined(dir);
  const realDir = dirSt?.isDirectory() ?? false;
  ensureLibDir();
  if (!isTrustedSubdir(paths.filesRoot()) || !isTrustedSubdir(record)) {
    for (const file of files) if (realDir && isOurs(join(dir, file))) removeIfExists(join(dir, file));
    return;
  }
  let keptSaved = false;
  for (const file of files) {
    const target = join(dir, file);
    const saved = join(record, file);
    const text = readTrustedFile(saved);
    if (text !== undefined) {
      if (!realDir || lstatOrUndefined(target)?.isDirectory()) {
        keptSaved = true;
        continue;
      }
      writeFileAtomic(target, text, savedMode(saved));
      removeIfExists(saved);
    } else if (realDir && isOurs(target)) {
      removeIfExists(target);
    }
  }
  if (existsSync(join(record, CREATED_DIR_MARK))) {
    if (realDir) removeDirIfEmpty(dir);
    removeIfExists(join(record, CREATED_DIR_MARK));
  }
  if (keptSaved) return;
  removeIfExists(join(record, OWNED_MARK));
  removeDirIfEmpty(record);
}

// A saved user file keeps the user's mode (minus write for group and others, which its
// record may not have): restored with it.
function savedMode(saved: string): number {
  return lstatSync(saved).mode & 0o755;
}

// The files a NAME's record knows about: the ones nsroute writes plus any saved user file.
export function recordedFiles(netns: string): string[] {
  const saved = listDir(paths.files(netns)).filter((f) => !f.startsWith('.'));
  return [...new Set(['resolv.conf', 'gai.conf', 'nsswitch.conf', ...saved])];
}

// NAMEs with a files record (the namespace may be gone, and its state with it).
export function namesWithFileRecords(): string[] {
  return listDir(paths.filesRoot());
}

// Makes the fail-closed rules (plan/guard.ts) match the given namespaces, looking first: one
// `ip -j rule show` per family, and a batch only for what differs. Returns what it changed.
export async function syncGuard(configs: readonly NamespaceConfig[]): Promise<string[]> {
  // IPv6 rules are read also when none are wanted: leftovers of ours must go.
  const { wanted, have } = await guardRules(configs, true);
  const lines4 = guardSyncLines(have.v4, wanted.v4);
  const lines6 = guardSyncLines(have.v6, wanted.v6);
  await Promise.all([ipBatch(lines4, undefined, 4), ipBatch(lines6, undefined, 6)]);
  return [...lines4, ...lines6.map((l) => `-6 ${l}`)];
}

// Whether some fail-closed rule the given namespaces need is missing (what the watcher looks
// at before taking the lock).
export async function guardMissing(configs: readonly NamespaceConfig[]): Promise<boolean> {
  const { wanted, have } = await guardRules(configs, false);
  const have4 = new Set(have.v4);
  const have6 = new Set(have.v6);
  return wanted.v4.some((r) => !have4.has(r)) || wanted.v6.some((r) => !have6.has(r));
}

// The guard rules the namespaces need, and those of ours the host has (one `ip -j rule show`
// per family). IPv6 is read when rules are wanted there or `allV6`; a kernel without IPv6
// fails that read, which only matters when IPv6 rules are wanted.
async function guardRules(configs: readonly NamespaceConfig[], allV6: boolean): Promise<{ wanted: GuardRules; have: GuardRules }> {
  const wanted = renderGuardRules(configs);
  const want6 = wanted.v6.length > 0;
  const [r4, r6] = await Promise.all([
    ipJson(['-4', 'rule', 'show']),
    want6 || allV6 ? ipJson(['-6', 'rule', 'show']).catch((e: Error) => (want6 ? Promise.reject(e) : [])) : [],
  ]);
  return { wanted, have: { v4: currentGuardRules(r4), v6: currentGuardRules(r6) } };
}

async function ruleExists(u: Uplink, family: 4 | 6 = 4): Promise<boolean> {
  return parseRules(await ipJson([`-${family}`, '-N', 'rule', 'show'])).some((r) => r.priority === u.pref && r.fwmark === u.mark && r.table === u.table);
}

// src_valid_mark=1 on an uplink makes strict rp_filter check its replies (which carry the
// uplink mark again, net/nft.ts) against the uplink's table. Saved first, put back when the
// last namespace using that device goes.
function enableSrcValidMark(dev: string): void {
  const rel = srcValidMarkPath(dev);
  const now = tryRead(rel);
  if (now === undefined) return; // a device without IPv4 config: nothing to do
  const host = readHostState();
  const saved = host.srcValidMark ?? {};
  if (saved[dev] === undefined) {
    saved[dev] = now;
    writeHostState({ ...host, srcValidMark: saved });
  }
  if (now !== '1') writeSysctl(rel, '1');
}

export function restoreSrcValidMark(dev: string): void {
  const host = readHostState();
  const value = host.srcValidMark?.[dev];
  if (value === undefined) return;
  if (tryRead(srcValidMarkPath(dev)) !== undefined && tryRead(srcValidMarkPath(dev)) !== value) writeSysctl(srcValidMarkPath(dev), value);
  const rest = { ...host.srcValidMark };
  delete rest[dev];
  writeHostState({ ...host, srcValidMark: Object.keys(rest).length > 0 ? rest : undefined });
}

// What a step created that undo must recognise (recorded in the journal by the applier).
export interface Created {
  netnsIno?: number;
  netnsCtime?: string;
}

// The ctime of a namespace's nsfs inode (ns, as text): with the inode number, what tells this
// namespace from a later one that got the freed number (journal.ts).
export function nsfsCtime(path: string): string | undefined {
  try {
    return statSync(path, { bigint: true }).ctimeNs.toString();
  } catch {
    return undefined;
  }
}

export async function doStep(step: Step, ctx: StepContext): Promise<Created | void> {
  switch (step.kind) {
    case 'netns-add': {
      await netnsAdd(step.name);
      // What identifies it from now on: a namespace another tool makes under the same name
      // later has another inode, and undo leaves that one alone.
      const netnsIno = netnsInode(join(NETNS_RUN_DIR, step.name));
      return netnsIno === undefined ? undefined : { netnsIno, netnsCtime: nsfsCtime(join(NETNS_RUN_DIR, step.name)) };
    }
    case 'veth-add':
      return ipBatch(vethLines(step));
    case 'ns-config':
      return ipBatch(nsConfigLines(step), step.netns);
    case 'netns-files': {
      const dir = netnsEtcDir(step.netns);
      checkNetnsFiles(step.netns, Object.keys(step.files));
      const record = ensureLibSubdir('files', step.netns);
      // Written first: with it, gc can put /etc/netns/NAME right even if the run dir is lost.
      writeFileAtomic(join(record, OWNED_MARK), '', 0o600);
      // A directory holding only files nsroute wrote (left when /run was lost at a reboot)
      // counts as ours too; an empty one the user made does not.
      const entries = listDir(dir);
      if (!existsSync(dir) || (entries.length > 0 && entries.every((f) => isOurs(join(dir, f))))) {
        writeFileAtomic(join(record, CREATED_DIR_MARK), '', 0o600);
        if (!existsSync('/etc/netns')) {
          mkdirSync('/etc/netns', { mode: 0o755 });
          chmodSync('/etc/netns', 0o755);
        }
        if (!existsSync(dir)) {
          mkdirSync(dir, { mode: 0o755 });
          chmodSync(dir, 0o755);
        }
      }
      for (const [file, text] of Object.entries(step.files)) {
        const target = join(dir, file);
        const st = lstatOrUndefined(target);
        if (st?.isFile() && !isOurs(target) && !existsSync(join(record, file))) {
          writeFileAtomic(join(record, file), readFileSync(target, 'utf8'), st.mode & 0o755);
        }
        writeFileAtomic(target, text, 0o644);
      }
      return;
    }
    case 'ip-forward': {
      const host = readHostState();
      if (!host.forwarding) {
        // Save first: a crash right after the write must still know what to put back.
        writeHostState({ ...host, forwarding: { saved: readForwardingSysctls() } });
      }
      if (tryRead('ip_forward') !== '1') writeSysctl('ip_forward', '1');
      return;
    }
    case 'ip6-forward': {
      const host = readHostState();
      if (!host.forwarding6) writeHostState({ ...host, forwarding6: { saved: readForwarding6Sysctls() } });
      for (const dev of listDir('/proc/sys/net/ipv6/conf')) {
        if (dev !== 'all' && tryRead6(`conf/${dev}/accept_ra`) === '1') write6(`conf/${dev}/accept_ra`, '2');
      }
      if (tryRead6('conf/all/forwarding') !== '1') write6('conf/all/forwarding', '1');
      return;
    }
    case 'uplink-route': {
      enableSrcValidMark(step.uplink.dev);
      await addUplinkRoutes(uplinkRouteLines(step.uplink), step.uplink.dev);
      if (!(await ruleExists(step.uplink))) await ipBatch([`rule add ${uplinkRuleArgs(step.uplink).join(' ')}`]);
      return;
    }
    case 'uplink-route6': {
      await addUplinkRoutes(uplinkRoute6Lines(step.uplink, step.via6), step.uplink.dev, 6);
      if (!(await ruleExists(step.uplink, 6))) await ipBatch([`rule add ${uplinkRuleArgs(step.uplink).join(' ')}`], undefined, 6);
      return;
    }
    case 'fw-holes':
      return ensureForwardHoles();
    case 'bridge-takeover': {
      const host = readHostState();
      if (host.takeovers?.[step.iface]) return; // another namespace took it over already
      const taken = await readTakeover(step.iface, step.bridge);
      // Recorded before the change: a crash in the middle can still be put back.
      writeHostState({ ...host, takeovers: { ...host.takeovers, [step.iface]: taken } });
      return takeOver(step.iface, taken);
    }
    case 'veth-bridge':
      return ipBatch(vethBridgeLines(step));
    case 'macvlan-add':
      await ipBatch([`link add link ${step.parent} name ${step.tmpIface} type macvlan mode bridge`, `link set dev ${step.tmpIface} netns ${step.netns}`]);
      return ipBatch([`link set dev ${step.tmpIface} name ${step.nsIface}`], step.netns);
    case 'ns-config-lan':
      await disableIpv6In(step.netns);
      return ipBatch(nsConfigLanLines(step), step.netns);
    case 'dhcp-client':
      return startDhcp(step.netns, step.nsIface, dhcpScript(step.netns, step.writeDns), paths.dhcpScript(step.netns), paths.dhcpPid(step.netns));
    case 'nft-sync':
      return nftRenderAll(ctx, true);
    case 'nft-member':
      return nftAddMember(step, ctx);
    case 'route-guard':
      await syncGuard([...ctx.others(), ...(ctx.self ? [ctx.self] : [])]);
      return;
    case 'replies-mark':
      // The table whole (few policies, rare changes): the replies_* objects come and go with
      // the first and last policy, in one transaction with everything else in the table.
      return nftRenderAll(ctx, true);
    // cgroup mode's own steps: loaded only when a plan has them.
    case 'cgroup-dir':
    case 'cgroup-localnet':
    case 'cgroup-nft':
      return (await import('./cgroup-steps.js')).doCgroupStep(step, ctx.self, ctx.others());
    case 'publish':
      // Strict rp_filter checks a published connection's packets against the table their mark
      // picks (net/publish.ts) only with src_valid_mark; they may come in by any interface, so
      // it is set for all (as wg-quick does), saved and put back with the last published port.
      enableSrcValidMark('all');
      return addPublished(step, () => nftRenderAll(ctx, true));
    case 'rate':
      return applyRate(step);
  }
}


// Puts saved forwarding sysctls back. The switch for all interfaces goes first: writing it
// resets every conf/*/forwarding, which are then put back one by one. Interfaces gone since
// are skipped; values already right are not written.
function restoreSysctls(saved: Record<string, string>, allKey: string, read: (rel: string) => string | undefined, write: (rel: string, v: string) => void): void {
  const all = saved[allKey];
  if (all !== undefined && read(allKey) !== all) write(allKey, all);
  for (const [rel, value] of Object.entries(saved)) {
    if (rel === allKey) continue;
    const now = read(rel);
    if (now !== undefined && now !== value) write(rel, value);
  }
}

export async function undoStep(step: Step, ctx: StepContext): Promise<void> {
  switch (step.kind) {
    case 'netns-add': {
      switch (netnsIsOurs(step.name, ctx.netns)) {
        case 'yes':
          return netnsDel(step.name);
        case 'replaced':
          notice(`left network namespace ${step.name} alone: another tool replaced the one nsroute created; removed only what was nsroute's`);
          return;
        case 'unknown':
          // Either `ip netns add` failed (the name was taken meanwhile) or nsroute was killed
          // between creating it and recording its inode: nothing proves it is ours, so it stays.
          notice(`left network namespace ${step.name} alone: nsroute has no record that it created it (interrupted right after creating it?); \`ip netns del ${step.name}\` removes it if it is a leftover`);
          return;
        case 'gone':
          return;
      }
      return;
    }
    case 'veth-add':
      // Deleting one end deletes the pair, even while processes keep the namespace alive.
      return removeOwnVeth(step.hostIface, step.netns, ctx.netns);
    case 'ns-config':
      return; // addresses and routes inside die with the namespace
    case 'netns-files':
      return undoNetnsFiles(step.netns, Object.keys(step.files));
    case 'ip-forward': {
      if (ctx.others().some(hasNetns)) return; // still needed by another namespace
      const host = readHostState();
      const saved = host.forwarding?.saved;
      if (!saved) return;
      restoreSysctls(saved, 'ip_forward', tryRead, writeSysctl);
      delete host.forwarding;
      writeHostState(host);
      return;
    }
    case 'ip6-forward': {
      if (ctx.others().some((o) => hasNetns(o) && o.ipv6 === 'nat')) return; // still needed by another namespace
      const host = readHostState();
      const saved = host.forwarding6?.saved;
      if (!saved) return;
      restoreSysctls(saved, 'conf/all/forwarding', tryRead6, write6);
      delete host.forwarding6;
      writeHostState(host);
      return;
    }
    case 'uplink-route': {
      if (!ctx.others().some((o) => o.uplink?.dev === step.uplink.dev)) restoreSrcValidMark(step.uplink.dev);
      if (ctx.others().some((o) => o.uplink?.table === step.uplink.table)) return;
      // Apply adds the rule only when it is missing, so there is at most one of ours.
      await ipIgnoringGone(['rule', 'del', ...uplinkRuleArgs(step.uplink)]);
      await ipIgnoringGone(['route', 'flush', 'table', String(step.uplink.table)]);
      return;
    }
    case 'uplink-route6': {
      if (ctx.others().some((o) => o.uplink?.table === step.uplink.table && o.ipv6 === 'nat')) return;
      await ipIgnoringGone(['-6', 'rule', 'del', ...uplinkRuleArgs(step.uplink)]);
      await ipIgnoringGone(['-6', 'route', 'flush', 'table', String(step.uplink.table)]);
      return;
    }
    case 'fw-holes':
      if (ctx.others().some(hasNetns)) return;
      return removeForwardHoles();
    case 'bridge-takeover': {
      if (ctx.others().some((o) => o.lan?.takeover === step.iface)) return; // still in use
      const host = readHostState();
      const taken = host.takeovers?.[step.iface];
      if (!taken) return;
      await giveBack(step.iface, taken);
      const rest = { ...host.takeovers };
      delete rest[step.iface];
      writeHostState({ ...host, takeovers: Object.keys(rest).length > 0 ? rest : undefined });
      return;
    }
    case 'veth-bridge':
      return removeOwnVeth(step.hostIface, step.netns, ctx.netns);
    case 'macvlan-add':
      // Dies with the namespace; gone from the host unless a crash left it before the move.
      return ipIgnoringGone(['link', 'del', 'dev', step.tmpIface]);
    case 'ns-config-lan':
      return;
    case 'dhcp-client':
      return stopDhcp(paths.dhcpPid(step.netns));
    case 'nft-sync':
      // A journal of an earlier version: its table was rendered whole, and so it is undone.
      return nftRenderAll(ctx, false);
    case 'nft-member':
      return nftDeleteMember(step, ctx);
    case 'route-guard':
      await syncGuard(ctx.others());
      return;
    case 'replies-mark':
      // Without this policy's objects (the table goes when nothing else is in it).
      return nftRenderAll(ctx, false);
    case 'cgroup-dir':
    case 'cgroup-localnet':
    case 'cgroup-nft':
      return (await import('./cgroup-steps.js')).undoCgroupStep(step, ctx.name, ctx.others());
    case 'publish':
      // With the last namespace the table goes whole (nft-member's undo, after this one).
      await removePublished(step, () => nftApply(renderNftRuleset(nftMembers(ctx.others()), nftReplies(ctx.others()))));
      if (!ctx.others().some((o) => o.publish && o.publish.length > 0)) restoreSrcValidMark('all');
      return;
    case 'rate':
      return undoRate(step);
  }
}

// ---- Combined apply and undo (apply.ts): the steps of a nat create without IPv6 in a few
// spawns instead of one or more per step. Every other plan goes step by step as before.
export const COMBINED_KINDS = new Set<Step['kind']>(['netns-add', 'route-guard', 'veth-add', 'ns-config', 'netns-files', 'ip-forward', 'uplink-route', 'fw-holes', 'nft-sync', 'nft-member']);

// Whether these steps (a create's, or a journal's intents) can go through the combined path:
// only the kinds above, nothing of IPv6 in them or in another namespace (the IPv6 fail-closed
// rules then need no change; `ip -4` batches are enough).
export function combinable(steps: readonly Step[], ctx: StepContext): boolean {
  if (steps.length === 0 || !steps.every((s) => COMBINED_KINDS.has(s.kind))) return false;
  if (steps.some((s) => s.kind === 'veth-add' && (s.hostCidr6 || s.subnet6))) return false;
  if (ctx.self && (ctx.self.mode !== 'nat' || ctx.self.ipv6 === 'nat')) return false;
  return !ctx.others().some((o) => o.ipv6 === 'nat');
}

// `ip -j -4 -N -d rule show` as the fail-closed rules' reader expects it (plan/guard.ts reads
// `ip -j -4 rule show`): the action by name, no protocol where the kernel has none.
const RULE_ACTIONS: Record<string, string> = { '6': 'blackhole', '7': 'unreachable', '8': 'prohibit' };
export function guardJsonOfNumeric(json: unknown): unknown[] {
  return (Array.isArray(json) ? (json as Record<string, unknown>[]) : []).map((r) => {
    const out = { ...r };
    if (out.protocol === '0') delete out.protocol;
    if (typeof out.action === 'string' && RULE_ACTIONS[out.action]) out.action = RULE_ACTIONS[out.action];
    return out;
  });
}

// The host's `ip -4 -batch` lines of a create step: the fail-closed rules first (as synced from
// the rules read with the facts), the veth, the uplink's table and rule. Lines of one step stay
// together and in step order, so `ip -batch` stopping at a failing line leaves a prefix of the
// plan applied, which the journal (all intents written first) undoes.
export function createHostLines(step: Step, ctx: StepContext, facts: HostFacts): string[] {
  switch (step.kind) {
    case 'netns-add':
      return [`netns add ${step.name}`];
    case 'route-guard': {
      const wanted = renderGuardRules([...ctx.others(), ...(ctx.self ? [ctx.self] : [])]);
      return guardSyncLines(currentGuardRules(guardJsonOfNumeric(facts.rulesJson)), wanted.v4);
    }
    case 'veth-add':
      return vethLines(step);
    case 'uplink-route': {
      const u = step.uplink;
      const has = facts.rules.some((r) => r.priority === u.pref && r.fwmark === u.mark && r.table === u.table);
      return [...uplinkRouteLines(u), ...(has ? [] : [`rule add ${uplinkRuleArgs(u).join(' ')}`])];
    }
    default:
      return [];
  }
}

// The part of a create step that is no `ip` line: files, sysctls, firewall (own spawns).
export async function createLocalPart(step: Step, ctx: StepContext, facts: HostFacts): Promise<void> {
  switch (step.kind) {
    case 'netns-files':
    case 'ip-forward':
    case 'nft-sync':
      await doStep(step, ctx);
      return;
    case 'nft-member':
      // The ruleset read with the facts says whether the table is there: the first namespace
      // renders it whole at once rather than after a failed element transaction.
      if (!hasNsrouteTable(facts.nftRuleset)) return nftRenderAll(ctx, true);
      return nftAddMember(step, ctx);
    case 'uplink-route':
      enableSrcValidMark(step.uplink.dev);
      return;
    case 'fw-holes':
      return ensureForwardHoles(facts.nftRuleset);
    default:
      return;
  }
}

// Undo of a journal's intents through the combined path: what the host batch must do for a step
// (read: the owner tag of the veth and the rules, read once before), and the rest.
export interface UndoFacts {
  vethOurs: Map<string, VethOwner>; // host iface -> may be deleted (and why)
  guardJson: unknown;
}

export function undoHostLines(step: Step, ctx: StepContext, facts: UndoFacts): string[] {
  switch (step.kind) {
    case 'netns-add':
      return netnsIsOurs(step.name, ctx.netns) === 'yes' ? [`netns del ${step.name}`] : [];
    case 'route-guard':
      return guardSyncLines(currentGuardRules(facts.guardJson), renderGuardRules(ctx.others()).v4);
    case 'veth-add':
      return facts.vethOurs.get(step.hostIface) ? [`link del dev ${step.hostIface}`] : [];
    case 'uplink-route':
      if (ctx.others().some((o) => o.uplink?.table === step.uplink.table)) return [];
      return [`rule del ${uplinkRuleArgs(step.uplink).join(' ')}`, `route flush table ${step.uplink.table}`];
    default:
      return [];
  }
}

export async function undoLocalPart(step: Step, ctx: StepContext): Promise<void> {
  switch (step.kind) {
    case 'netns-add':
      if (netnsIsOurs(step.name, ctx.netns) !== 'yes') await undoStep(step, ctx); // says why it is left alone
      return;
    case 'netns-files':
    case 'ip-forward':
    case 'nft-sync':
    case 'nft-member':
    case 'fw-holes':
      return undoStep(step, ctx);
    case 'uplink-route':
      if (!ctx.others().some((o) => o.uplink?.dev === step.uplink.dev)) restoreSrcValidMark(step.uplink.dev);
      return;
    default:
      return;
  }
}

// Why a veth's host end is NAME's: its owner tag says so, or (untagged) its peer is in NAME's
// own namespace. false: it is not (or is gone).
export type VethOwner = 'tag' | 'peer' | false;

// Whose the host ends of these veths are (removeOwnVeth's rule), from one read.
export async function vethOwnership(step: Extract<Step, { kind: 'veth-add' }>, link: unknown[] | undefined, ctx: StepContext): Promise<VethOwner> {
  const l = (link ?? [])[0] as Record<string, unknown> | undefined;
  if (!l) return false; // gone already
  const alias = typeof l.ifalias === 'string' ? l.ifalias : undefined;
  if (parseTag(alias)?.name === step.netns) return 'tag';
  if (alias === undefined && netnsIsOurs(step.netns, ctx.netns) === 'yes') {
    const id = await netnsId(step.netns);
    const ours = id !== undefined && l.link_netnsid === id;
    if (!ours) notice(`left interface ${step.hostIface} alone: it is not ${step.netns}'s (it has no nsroute owner tag)`);
    return ours ? 'peer' : false;
  }
  notice(`left interface ${step.hostIface} alone: it is not ${step.netns}'s (${alias ? `its owner tag is "${alias}"` : 'it has no nsroute owner tag'})`);
  return false;
}

// Puts back, for a namespace that is up, what other tools removed (lifecycle.ts `repair`),
// looking before touching: one `nft -j list ruleset` tells whether nsroute's table and the
// firewall holes are still there; routes and rules are re-added in one `ip -force -batch`
// per family (`route replace` is idempotent, a second `rule add` fails with EEXIST and is
// skipped). A few milliseconds, so every joining exec can afford it. Returns the problems
// (an uplink that is down is none: its traffic is blocked by the kill switch, as it should).
export async function repairSteps(steps: readonly Step[], ctx: StepContext): Promise<string[]> {
  const problems: string[] = [];
  const v4: string[] = [];
  const v6: string[] = [];
  let holes = false;
  let nft = false;
  let member: Extract<Step, { kind: 'nft-member' }> | undefined;
  let published: Extract<Step, { kind: 'publish' }> | undefined;
  let rate: Extract<Step, { kind: 'rate' }> | undefined;
  let guard = false;
  let replies: Extract<Step, { kind: 'replies-mark' }> | undefined;
  const hostMode: Step[] = [];
  for (const step of steps) {
    switch (step.kind) {
      case 'veth-add':
        for (const l of vethRouteLines(step)) (l.split(' ')[2]!.includes(':') ? v6 : v4).push(l);
        break;
      case 'ip-forward':
      case 'ip6-forward':
        await doStep(step, ctx); // sysctl files only
        break;
      case 'uplink-route':
        enableSrcValidMark(step.uplink.dev);
        v4.push(...uplinkRouteLines(step.uplink), `rule add ${uplinkRuleArgs(step.uplink).join(' ')}`);
        break;
      case 'uplink-route6':
        v6.push(...uplinkRoute6Lines(step.uplink, step.via6), `rule add ${uplinkRuleArgs(step.uplink).join(' ')}`);
        break;
      case 'fw-holes':
        holes = true;
        break;
      case 'nft-sync':
        nft = true;
        break;
      case 'nft-member':
        nft = true;
        member = step;
        break;
      case 'route-guard':
        guard = true;
        break;
      case 'replies-mark':
        replies = step;
        break;
      // cgroup mode: idempotent, each a no-op when in place (the elements' add, the sysctl)
      case 'cgroup-dir':
      case 'cgroup-localnet':
      case 'cgroup-nft':
        hostMode.push(step);
        break;
      case 'publish':
        nft = true;
        published = step;
        enableLocalnet(step);
        enableSrcValidMark('all');
        break;
      case 'rate':
        rate = step; // the last one is in force (`up` changes caps by adding one)
        break;
    }
  }
  for (const step of hostMode) await doStep(step, ctx).catch((e: Error) => problems.push(`${step.kind}: ${e.message.split('\n')[0]}`));
  const ruleset = nft || holes || replies ? await nftRulesetJson() : undefined;
  await Promise.all([
    guard ? syncGuard([...ctx.others(), ...(ctx.self ? [ctx.self] : [])]).catch((e: Error) => problems.push(`fail-closed rules: ${e.message.split('\n')[0]}`)) : undefined,
    ipBatchForce(v4, 4),
    ipBatchForce(v6, 6),
    // A missing table (a flushed firewall) comes back whole, with every namespace's elements;
    // a table that lost only this namespace's elements gets them back.
    nft && (!hasNsrouteTable(ruleset) || (member && !nftHasMember(ruleset, member.iface)) || (published && !publishIntact(ruleset, published)))
      ? (hasNsrouteTable(ruleset) && member && !published ? nftAddMember(member, ctx) : nftRenderAll(ctx, true)).catch((e: Error) => problems.push(`nft table: ${e.message.split('\n')[0]}`))
      : undefined,
    holes && (renderHoleInserts(forwardChains(ruleset)) !== '' || xtablesHolesMissing(ruleset).length > 0 || legacyFilterTables())
      ? ensureForwardHoles().catch((e: Error) => problems.push(`firewall holes: ${e.message.split('\n')[0]}`))
      : undefined,
    // A replies policy (--mode replies) that lost its objects (a flushed firewall): the table whole.
    replies && !nft && !nftHasReplies(ruleset, replies.dev, replies.mark)
      ? nftRenderAll(ctx, true).catch((e: Error) => problems.push(`nft table: ${e.message.split('\n')[0]}`))
      : undefined,
    rate ? applyRate(rate).catch((e: Error) => problems.push(`bandwidth caps: ${e.message.split('\n')[0]}`)) : undefined,
  ]);
  return problems;
}

// Whether the table still holds this namespace's published ports.
function publishIntact(ruleset: unknown, step: Extract<Step, { kind: 'publish' }>): boolean {
  if (!hasPublishObjects(ruleset)) return false;
  const key = (p: { hostAddr?: string; hostPort: number; port: number; proto: string }) => `${p.hostAddr ?? ''}:${p.hostPort}:${p.port}/${p.proto}`;
  const have = new Set(publishedIn(ruleset, step.nsAddress).map(key));
  return step.ports.every((p) => have.has(key(p)));
}
