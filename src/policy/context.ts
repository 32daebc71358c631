// Who nsroute acts for when a user who is not root entered it through sudo and the entry
// point (policy/entry.ts): set once, before any command parses, and never changed. Kept free
// of imports so any module (the test hooks in apply/crash.ts) can ask cheaply.
export interface CallerContext {
  uid: number;
  gid: number;
  name: string;
  gids: number[];
}

let caller: CallerContext | undefined;

export function setCaller(c: CallerContext): void {
  if (caller) throw new Error('the caller is set once');
  caller = Object.freeze({ ...c, gids: [...c.gids] });
}

// undefined: root ran nsroute directly (a root shell, or sudo with root's own rights).
export function callerContext(): CallerContext | undefined {
  return caller;
}

// Names `nsroute list` shows to the caller (undefined: all).
let visible: ((name: string) => boolean) | undefined;
export function setVisibleNames(f: (name: string) => boolean): void {
  visible = f;
}
export function isVisibleName(name: string): boolean {
  return visible ? visible(name) : true;
}
