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
