/**
 * Node's `fs` and `path` reached through `process.getBuiltinModule` (Node >= 20.16, src/wasm/host.ts)
 * instead of an import statement, for the few file-writing modules of the in-page training path
 * (checkpoints and exports encode in memory there, and only write files in Node): a browser bundle then
 * holds no `node:` import (docs/browser.md). Calling these outside Node throws, naming what needed Node.
 */
import type * as NodeFs from 'node:fs';
import type * as NodePath from 'node:path';
import { requireBuiltin } from './wasm/host.js';

export const nodeFs = (what: string): typeof NodeFs => requireBuiltin('node:fs', what);
export const nodePath = (what: string): typeof NodePath => requireBuiltin('node:path', what);
