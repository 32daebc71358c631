import { writeSync } from 'node:fs';

// Writes text to fd 1 without process.stdout: making that stream loads Node's stream and net
// modules (~5 ms here), most of what `list` costs beyond Node's own start-up. Blocking writes
// of the whole text; a non-blocking fd (EAGAIN: a pipe its other end set so) gets the rest
// through process.stdout, which waits for the reader. Any other failure (a closed pipe or
// terminal) is ignored, as process.stdout's errors are (main.ts).
export function writeStdout(text: string): void {
  const buf = Buffer.from(text);
  let off = 0;
  try {
    while (off < buf.length) off += writeSync(1, buf, off, buf.length - off);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'EAGAIN') process.stdout.write(buf.subarray(off));
  }
}
