// Errors a user can cause: one line naming the problem and the fix; the host is unchanged.
export class UserError extends Error {
  constructor(
    message: string,
    readonly hint?: string,
  ) {
    super(message);
    this.name = 'UserError';
  }
}

// The host failed nsroute outside a tool (a full disk, a read-only file system): one line
// naming what and the fix (`hint`), exit 1. Whatever the command had changed is undone.
export class HostError extends Error {
  constructor(
    message: string,
    public hint?: string,
  ) {
    super(message);
    this.name = 'HostError';
  }
}

// A signal arrived while nsroute waited (for the host lock) before changing anything: the
// command ends with 128+N, like a process the signal ended, and nothing changed.
export class Interrupted extends Error {
  constructor(
    readonly signal: NodeJS.Signals,
    what: string,
  ) {
    super(`interrupted by ${signal} while ${what}; nothing was changed`);
    this.name = 'Interrupted';
  }
}

// A system tool failed: carries what ran and what it said, so the report is actionable.
export class SysError extends Error {
  constructor(
    message: string,
    readonly argv: readonly string[],
    readonly exitCode: number | undefined,
    readonly stderr: string,
  ) {
    super(message);
    this.name = 'SysError';
  }
}

// Several independent failures (teardown keeps going and reports them all at the end).
export class AggregateSysError extends Error {
  constructor(readonly errors: readonly Error[]) {
    super(`${errors.length} step(s) failed:\n${errors.map((e) => `  - ${e.message}`).join('\n')}`);
    this.name = 'AggregateSysError';
  }
}
