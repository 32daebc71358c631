import { expect } from 'vitest';
import { UserError } from '../../src/errors.js';

// Runs fn and returns the UserError it must throw; fails the test on anything else.
export function catchUserError(fn: () => unknown): UserError {
  try {
    fn();
  } catch (e) {
    expect(e).toBeInstanceOf(UserError);
    return e as UserError;
  }
  throw new Error('expected a UserError, nothing was thrown');
}
