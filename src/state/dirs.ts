import { join } from 'node:path';
import { ensureTrustedDir, ensureTrustedSubdir } from '../sys/fsx.js';
import { libDir, runDir } from './paths.js';

// nsroute's state is root's alone: the journal decides what gc deletes, host.json what
// sysctls are written, the saved files what lands in /etc/netns. So the run and lib dirs
// are made 0700 whatever the umask, and refused (one line, nothing changed) when they or a
// directory above them could be written by someone else. Checked at every use (a few
// lstat calls): a check cached per process would miss a change made while it waited.

export function ensureRunDir(): string {
  const dir = runDir();
  ensureTrustedDir(dir, 0o700, 'the run directory');
  return dir;
}

export function ensureLibDir(): string {
  const dir = libDir();
  ensureTrustedDir(dir, 0o700, 'the lib directory');
  return dir;
}

// A directory under the run dir (ns, ns/NAME) or the lib dir (files, files/NAME), made 0700
// or checked, each level.
function ensureSubdir(root: string, parts: readonly string[]): string {
  let dir = root;
  for (const p of parts) {
    dir = join(dir, p);
    ensureTrustedSubdir(dir, 0o700);
  }
  return dir;
}

export function ensureRunSubdir(...parts: string[]): string {
  return ensureSubdir(ensureRunDir(), parts);
}

export function ensureLibSubdir(...parts: string[]): string {
  return ensureSubdir(ensureLibDir(), parts);
}
