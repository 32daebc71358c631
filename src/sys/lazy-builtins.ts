// Node's built-in modules that cost to load and that only some commands use: loaded on first
// use instead of at start-up. node:crypto takes ~6 ms to load (measured with Node 20.20), and
// only planning long interface names uses it: `list`, `status`, a hot `exec` and most cold ones
// do not pay for it.
let crypto: typeof import('node:crypto') | undefined;

export function nodeCrypto(): typeof import('node:crypto') {
  // process.getBuiltinModule: Node >= 20.16; before that, the bundle's CommonJS require.
  crypto ??= process.getBuiltinModule?.('node:crypto') ?? (require('node:crypto') as typeof import('node:crypto'));
  return crypto;
}
