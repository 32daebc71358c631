import { describe, expect, it } from 'vitest';
import { checkPathEnv, PATH_ENV } from '../../../src/state/paths.js';
import { UserError } from '../../../src/errors.js';

describe('checkPathEnv', () => {
  it.each(PATH_ENV)('refuses a relative %s, naming it', (key) => {
    for (const value of ['run', './x', '../etc/nsroute', '~/x']) {
      let caught: unknown;
      try {
        checkPathEnv({ [key]: value });
      } catch (e) {
        caught = e;
      }
      expect(caught, `${key}=${value}`).toBeInstanceOf(UserError);
      expect((caught as UserError).message).toContain(key);
    }
  });

  it('accepts absolute paths, and unset or empty settings (the defaults)', () => {
    expect(() => checkPathEnv({})).not.toThrow();
    expect(() => checkPathEnv(Object.fromEntries(PATH_ENV.map((k) => [k, `/tmp/${k}`])))).not.toThrow();
    expect(() => checkPathEnv({ NSROUTE_RUN_DIR: '' })).not.toThrow();
  });
});
