/**
 * Node's built-in modules reached through `process.getBuiltinModule` (Node >= 20.16) instead of an import
 * statement, for the few file-writing modules that the in-page training path also bundles (checkpoints and
 * exports encode in memory there, and only write files in Node): a browser bundle then holds no `node:`
 * import (docs/browser.md). Calling these outside Node throws, naming what needed Node.
 */
import type * as NodeFs from 'node:fs';
import type * as NodePath from 'node:path';

function builtin<T>(id: string, what: string): T {
  const host = globalThis as { process?: { getBuiltinModule?: (id: string) => unknown } };
  const found = host.process?.getBuiltinModule?.(id);
  if (found === undefined) throw new Error(`${what} needs Node (>= 20.16): ${id} is not available here`);
  return found as T;
}

export const nodeFs = (what: string): typeof NodeFs => builtin('node:fs', what);
export const nodePath = (what: string): typeof NodePath => builtin('node:path', what);
