import { spawn, type ChildProcess } from 'node:child_process';
import { trace } from './trace.js';
import { callerContext } from '../policy/context.js';

// One helper process per nsroute command that starts the short tools (ip, nft, sysctl...) for
// it. Node's spawn() forks the whole ~50 MB Node process (libuv fork + exec): ~8-20 ms per
// tool, most of a cold exec's time (issue 11). A small perl process forks in ~1 ms. perl-base
// is Essential on Debian and Ubuntu; where perl is missing, run.ts spawns directly as before.
//
// Same contract as a direct spawn: an argv array exec'd without a shell (perl's
// `exec {FILE} LIST` form never involves one), stdin from `input`, stdout and stderr captured,
// the exit code or signal reported, a failed exec reported as such (the child's last words on
// its stderr, recognised only as the whole stderr of an exit 127). Jobs run concurrently. The helper inherits nothing but
// its pipes (perl marks every fd above 2 close-on-exec), and exits when nsroute closes its
// stdin (nsroute exited or died); a job still running then finishes on its own, as a tool
// spawned directly would. It ignores the terminal's and the service manager's signals (^C,
// ^Z, SIGTERM to the whole group), as nsroute finishes a teardown through them: it must not
// die or stop under nsroute mid-teardown. Each tool gets the default dispositions back.
//
// The host lock (state/lock.ts): a command that knows it will take it (exec, shell) opens the
// lock file before the runner starts and hands it over as the runner's fd 3 (argument
// `lockfd`), so that taking and dropping the lock costs no fork of Node (10-25 ms of
// nsroute's own time per spawn). fd 3 is the same open file description as nsroute's fd,
// which is what flock(2) locks. A job with flag 2 works on it: `flock -u 3` and an
// uncontended `flock -x 3` the runner answers itself with flock(2) (LOCK_UN; LOCK_EX|LOCK_NB),
// anything else runs as the tool with fd 3 kept open (a contended take waits in flock's own
// process, which a signal can kill). fd 3 is close-on-exec for every other job, and at the end
// of its input (nsroute exited or died) the runner closes it at once: it never holds the lock
// longer than nsroute does.
//
// `nft list table FAMILY NAME` asked only whether the table exists (flag 8, sys/nft.ts
// nftTableExists: the hot exec's look before it joins): the runner asks the kernel itself,
// one nf_tables GETTABLE on a netlink socket (~30 us, where starting nft took 20-60 ms), and
// answers exit 0 (there) or 1 (ENOENT), as nft would, without output. Any other answer, or
// no socket, runs nft as the job.
//
// Request:  u32 id, u32 argv bytes, u32 input bytes, u8 flags (1: setsid, 2: the lock on fd 3,
//           4: no job, SIGKILL job `id` if it runs, 8: a table probe), argv (NUL-joined), input.
// Response: u32 id, i32 exit code (-1: killed by a signal or never ran), i32 signal,
//           i32 exec errno (0: it ran), u32 stdout bytes, u32 stderr bytes, stdout, stderr.
const SCRIPT = String.raw`
use strict;
my @sigs = qw(INT HUP TERM QUIT TSTP TTIN TTOU);
$SIG{$_} = 'IGNORE' for @sigs, 'PIPE';
binmode STDIN; binmode STDOUT;
my ($req, $eof, %jobs) = ('', 0);
my %opt = map { $_ => 1 } @ARGV;
require POSIX if $opt{setsid};
my $LOCK;
if ($opt{lockfd}) {
  open($LOCK, '+<&=', 3) or die "nsroute runner: fd 3: $!\n";
  fcntl($LOCK, 2, 1) or die "nsroute runner: fd 3: $!\n"; # F_SETFD, FD_CLOEXEC
}
sub nft_table {
  my ($family, $name) = @_;
  my %fam = (inet => 1, ip => 2, ip6 => 10);
  return undef unless exists $fam{$family} && $name =~ /\A[A-Za-z0-9_]{1,31}\z/;
  socket(my $s, 16, 3, 12) or return undef;
  my $attr = $name . "\0";
  my $alen = 4 + length $attr;
  $attr .= "\0" x ((4 - length($attr) % 4) % 4);
  my $payload = pack('CCn', $fam{$family}, 0, 0) . pack('SS', $alen, 1) . $attr;
  send($s, pack('LSSLL', 16 + length $payload, (10 << 8) | 1, 1 | 4, 1, 0) . $payload, 0) or return undef;
  my $found = 0;
  for (1 .. 4) {
    defined(recv($s, my $buf, 65536, 0x40)) or return undef;
    for (my $off = 0; $off + 16 <= length $buf; ) {
      my ($len, $type) = unpack('LS', substr($buf, $off, 6));
      return undef if $len < 16 || $off + $len > length $buf;
      if ($type == 2) {
        return undef if $len < 20;
        my $err = unpack('l', substr($buf, $off + 16, 4));
        return $found if $err == 0;
        return $err == -2 ? 0 : undef;
      }
      $found = 1 if $type == (10 << 8);
      $off += ($len + 3) & ~3;
    }
  }
  return undef;
}
sub start {
  my ($id, $flags, $argv, $input) = @_;
  if ($flags & 4) { kill('KILL', $jobs{$id}{pid}) if $jobs{$id}; return; }
  my @argv = split(/\0/, $argv, -1);
  my $j = { id => $id, input => $input, out => '', err => '' };
  if ($flags & 8 && @argv == 5 && "@argv[0..2]" eq 'nft list table') {
    my $there = nft_table(@argv[3, 4]);
    if (defined $there) { $j->{status} = $there ? 0 : 256; return respond($j); }
  }
  if ($LOCK && $flags & 2 && ($argv[1] // '') =~ /\A-[ux]\z/) {
    if ($argv[1] eq '-u') { $j->{status} = flock($LOCK, 8) ? 0 : 256; return respond($j); }
    if (flock($LOCK, 6)) { $j->{status} = 0; return respond($j); }
  }
  require POSIX if $flags & 1;
  pipe(my $ir, my $iw) or return fail($j, $!); pipe(my $or, my $ow) or return fail($j, $!);
  pipe(my $er, my $ew) or return fail($j, $!);
  my $pid = fork();
  return fail($j, $!) unless defined $pid;
  if ($pid == 0) {
    $SIG{$_} = 'DEFAULT' for @sigs, 'PIPE';
    POSIX::setsid() if $flags & 1;
    fcntl($LOCK, 2, 0) if $LOCK && $flags & 2;
    open(STDIN, '<&', $ir); open(STDOUT, '>&', $ow); open(STDERR, '>&', $ew);
    exec { $argv[0] } @argv;
    my $errno = $! + 0;
    syswrite(STDERR, "\0nsroute-runner-exec-errno $errno");
    require POSIX; POSIX::_exit(127);
  }
  close $ir; close $ow; close $ew;
  @$j{qw(pid iw or er)} = ($pid, $iw, $or, $er);
  if ($input eq '') { close $iw; delete $j->{iw}; }
  $jobs{$id} = $j;
}
sub fail { my ($j, $e) = @_; $j->{errno} = $e + 0; respond($j); }
sub respond {
  my ($j) = @_;
  my ($code, $sig) = (-1, 0);
  if (!$j->{errno}) { my $st = $j->{status}; if ($st & 127) { $sig = $st & 127 } else { $code = $st >> 8 } }
  if ($code == 127 && $j->{err} =~ /\A\0nsroute-runner-exec-errno (\d+)\z/) { ($code, $j->{errno}, $j->{err}) = (-1, $1, ''); }
  my $f = pack('Nl>l>l>NN', $j->{id}, $code, $sig, $j->{errno} // 0, length $j->{out}, length $j->{err}) . $j->{out} . $j->{err};
  while (length $f) { my $w = syswrite(STDOUT, $f); exit 1 unless defined $w; substr($f, 0, $w) = ''; }
}
while (1) {
  last if $eof && !%jobs;
  my ($rin, $win) = ('', '');
  vec($rin, 0, 1) = 1 unless $eof;
  for my $j (values %jobs) {
    vec($rin, fileno($j->{or}), 1) = 1 if $j->{or};
    vec($rin, fileno($j->{er}), 1) = 1 if $j->{er};
    vec($win, fileno($j->{iw}), 1) = 1 if $j->{iw};
  }
  my $n = select(my $r = $rin, my $w = $win, undef, undef);
  next if $n < 0;
  if (!$eof && vec($r, 0, 1)) {
    my $got = sysread(STDIN, $req, 65536, length $req);
    if (!$got) { $eof = 1; close($LOCK) if $LOCK; undef $LOCK; }
    while (length($req) >= 13) {
      my ($id, $al, $il, $fl) = unpack('NNNC', $req);
      last if length($req) < 13 + $al + $il;
      start($id, $fl, substr($req, 13, $al), substr($req, 13 + $al, $il));
      substr($req, 0, 13 + $al + $il) = '';
    }
  }
  for my $j (values %jobs) {
    if ($j->{iw} && vec($w, fileno($j->{iw}), 1)) {
      my $k = syswrite($j->{iw}, $j->{input}, 4096);
      substr($j->{input}, 0, $k) = '' if defined $k;
      if (!defined $k || $j->{input} eq '') { close $j->{iw}; delete $j->{iw}; }
    }
    for my $s (qw(or er)) {
      next unless $j->{$s} && vec($r, fileno($j->{$s}), 1);
      my $k = sysread($j->{$s}, $j->{$s eq 'or' ? 'out' : 'err'}, 65536, length $j->{$s eq 'or' ? 'out' : 'err'});
      if (!$k) { close $j->{$s}; delete $j->{$s}; }
    }
    if (!$j->{or} && !$j->{er}) {
      if ($j->{iw}) { close $j->{iw}; delete $j->{iw}; }
      waitpid($j->{pid}, 0); $j->{status} = $?;
      delete $jobs{$j->{id}}; respond($j);
    }
  }
}
`;

export interface RunnerResult {
  stdout: string;
  stderr: string;
  // undefined: killed by a signal, or never ran (errno set)
  exitCode: number | undefined;
  signal: number | undefined;
  errno: number | undefined;
}

interface Pending {
  resolve: (r: RunnerResult) => void;
  reject: (e: Error) => void;
}

let helper: { child: ChildProcess; pending: Map<number, Pending>; parts: Buffer[]; have: number; lockFd?: number } | undefined;
let unavailable = process.env.NSROUTE_NO_RUNNER === '1';
let nextId = 1;
// The host lock file's fd (state/lock.ts), handed to every runner started from now on.
let lockFd: number | undefined;

function startHelper(): NonNullable<typeof helper> | undefined {
  if (helper) return helper;
  if (unavailable) return undefined;
  // The tools get what a direct spawn gave them (run.ts: nsroute's environment and LC_ALL=C),
  // minus what would make perl itself load code (PERL5OPT, PERL5LIB, PERLLIB, PERL5DB...).
  const env: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env)) if (!/^PERL/i.test(k)) env[k] = v;
  env.LC_ALL = 'C';
  let child: ChildProcess;
  try {
    const withLock = lockFd !== undefined ? [lockFd] : [];
    // perl loads no module unless told: `use POSIX` alone doubled its start (~12 ms of the
    // 25 ms before it answered the first job). POSIX is for setsid, which every tool of a user
    // who entered through sudo gets (run.ts): such a runner loads it as it starts.
    const opts = [...(withLock.length ? ['lockfd'] : []), ...(callerContext() !== undefined ? ['setsid'] : [])];
    child = spawn('perl', ['-e', SCRIPT, ...opts], { stdio: ['pipe', 'pipe', 'inherit', ...withLock], env });
  } catch {
    unavailable = true;
    return undefined;
  }
  const h = { child, pending: new Map<number, Pending>(), parts: [] as Buffer[], have: 0, lockFd };
  const failAll = (e: Error) => {
    if (helper === h) helper = undefined;
    for (const p of h.pending.values()) p.reject(e);
    h.pending.clear();
  };
  child.once('error', (e) => {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') unavailable = true;
    failAll(Object.assign(new Error(`the tool runner (perl) could not start: ${e.message}`), { runnerUnavailable: true }));
  });
  child.once('exit', () => failAll(new Error('the tool runner (perl) exited')));
  child.stdin!.on('error', () => undefined);
  child.stdout!.on('data', (d: Buffer) => {
    // The chunks of a large answer (ip -j at N namespaces: megabytes) are joined once, when
    // the whole answer is in, not at every chunk (that was quadratic: ~16 ms at N=300).
    h.parts.push(d);
    h.have += d.length;
    while (h.have >= 24) {
      if (h.parts[0]!.length < 24) h.parts = [Buffer.concat(h.parts)];
      const head = h.parts[0]!;
      const outLen = head.readUInt32BE(16);
      const errLen = head.readUInt32BE(20);
      const total = 24 + outLen + errLen;
      if (h.have < total) break;
      const buf = h.parts.length === 1 ? head : Buffer.concat(h.parts);
      const id = buf.readUInt32BE(0);
      const code = buf.readInt32BE(4);
      const sig = buf.readInt32BE(8);
      const errno = buf.readInt32BE(12);
      const r: RunnerResult = {
        stdout: buf.subarray(24, 24 + outLen).toString('utf8'),
        stderr: buf.subarray(24 + outLen, total).toString('utf8'),
        exitCode: code >= 0 ? code : undefined,
        signal: sig > 0 ? sig : undefined,
        errno: errno !== 0 ? errno : undefined,
      };
      const rest = buf.subarray(total);
      h.parts = rest.length > 0 ? [rest] : [];
      h.have = rest.length;
      const p = h.pending.get(id);
      h.pending.delete(id);
      p?.resolve(r);
    }
    idle(h);
  });
  helper = h;
  idle(h);
  return h;
}

// An idle helper must not keep nsroute's event loop alive; a busy one must. One idle for a
// second ends (an exec whose command runs for hours does not keep it): the next tool starts
// another.
const IDLE_MS = 1000;
let idleTimer: NodeJS.Timeout | undefined;
function idle(h: NonNullable<typeof helper>): void {
  const busy = h.pending.size > 0;
  if (idleTimer) clearTimeout(idleTimer);
  idleTimer = undefined;
  if (!busy) {
    idleTimer = setTimeout(() => {
      if (helper === h && h.pending.size === 0) {
        helper = undefined;
        h.child.stdin!.end();
      }
    }, IDLE_MS);
    idleTimer.unref();
  }
  const handles = [h.child, h.child.stdout, h.child.stdin] as unknown as Array<{ ref?: () => void; unref?: () => void }>;
  for (const x of handles) (busy ? x?.ref : x?.unref)?.call(x);
}

// Starts the runner ahead of its first job, so that perl starts while nsroute loads the code
// that will use it (exec and shell: cli.ts).
export function warmRunner(): void {
  startHelper();
}

// A long-running process (the host watcher) spawns its tools directly: its repairs are rare,
// and it should not keep a second process alive next to its monitors.
export function spawnToolsDirectly(): void {
  unavailable = true;
}

// Runs argv through the helper; undefined when there is no helper (perl missing): the caller
// spawns directly.
export function runViaHelper(argv: readonly string[], input: string | undefined, setsid: boolean): Promise<RunnerResult> | undefined {
  if (argv.some((a) => a.includes('\0'))) return undefined;
  const h = startHelper();
  if (!h) return undefined;
  return send(h, argv, input, setsid ? 1 : 0).result;
}

// Whether nft's table FAMILY NAME exists, answered by the runner without starting nft (flag
// 8, above); undefined when there is no runner (the caller runs nft).
export function probeNftTable(family: string, name: string): Promise<RunnerResult> | undefined {
  const h = startHelper();
  if (!h) return undefined;
  return send(h, ['nft', 'list', 'table', family, name], undefined, 8, { probe: true }).result;
}

// state/lock.ts: the host lock file, open in nsroute, for the runners started from now on
// (their fd 3).
export function giveRunnerLockFd(fd: number): void {
  lockFd = fd;
}

// The runner's fd 3 could not be let go (state/lock.ts): no runner gets the file from now on,
// and the one that has it ends (closing its fd 3) once its jobs are done.
export function dropRunnerLockFd(): void {
  lockFd = undefined;
  if (helper?.lockFd === undefined) return;
  const h = helper;
  helper = undefined;
  h.child.stdin!.end();
}

// A job that works on the host lock file as its fd 3 (`flock -x 3`, `flock -u 3`), and how to
// stop it; undefined when no runner holding that file can run it (no perl, or a runner that
// was started before the file was handed over).
export function runLockJob(argv: readonly string[], setsid: boolean): { result: Promise<RunnerResult>; kill: () => void } | undefined {
  const h = startHelper();
  if (!h || h.lockFd === undefined || h.lockFd !== lockFd) return undefined;
  const { id, result } = send(h, argv, undefined, (setsid ? 1 : 0) | 2, { lock: true });
  const kill = () => {
    if (helper === h && h.pending.has(id)) h.child.stdin!.write(request(id, Buffer.alloc(0), Buffer.alloc(0), 4));
  };
  return { result, kill };
}

function request(id: number, a: Buffer, i: Buffer, flags: number): Buffer {
  const head = Buffer.alloc(13);
  head.writeUInt32BE(id, 0);
  head.writeUInt32BE(a.length, 4);
  head.writeUInt32BE(i.length, 8);
  head.writeUInt8(flags, 12);
  return Buffer.concat([head, a, i]);
}

// NSROUTE_TRACE: one line per job (a lock job is marked: the runner answers most of them
// itself, without a process) and one when its answer is in.
function send(h: NonNullable<typeof helper>, argv: readonly string[], input: string | undefined, flags: number, mark: { lock?: true; probe?: true } = {}): { id: number; result: Promise<RunnerResult> } {
  const id = nextId++;
  trace({ ev: 'spawn', argv: [...argv], via: 'runner', ...mark, id });
  const result = new Promise<RunnerResult>((resolve, reject) => {
    h.pending.set(id, { resolve: (r) => (trace({ ev: 'done', id }), resolve(r)), reject });
    idle(h);
    h.child.stdin!.write(request(id, Buffer.from(argv.join('\0'), 'utf8'), Buffer.from(input ?? '', 'utf8'), flags));
  });
  return { id, result };
}
