/** Helpers for the tests that give commands their flags: values other than the defaults, parsing without running. */
import assert from 'node:assert/strict';
import type { Command } from 'commander';
import { isValidValue, type OptionDeclaration } from '../src/methods/options.js';

/** A valid value for a method's flag other than its default, as command-line words. */
export function methodFlagValue(d: OptionDeclaration): string[] {
  switch (d.kind) {
    case 'boolean':
      return [d.flag];
    case 'choice':
      return [d.flag, d.choices.find((c) => c !== d.default) ?? d.default];
    case 'number':
    case 'integer': {
      const candidates = [d.default * 2, d.default + 1, d.default - 1, d.default / 2, 0.5, 0.1];
      const ok = candidates.find((v) => v !== d.default && isValidValue(d, v));
      assert.ok(ok !== undefined, `no test value for ${d.flag}`);
      return [d.flag, String(ok)];
    }
  }
}

/** Base words that make a valid run for `method` (float-free needs 1-bit activations). */
export function methodBase(method: string): string[] {
  return ['--method', method, ...(method === 'float-free' ? ['--activations', 'binary'] : [])];
}

/** The parsed flags of a command, without running its action. */
export async function parseFlags<F>(command: Command, args: readonly string[]): Promise<F> {
  let parsed: F | null = null;
  command.action((flags: F) => {
    parsed = flags;
  });
  await command.parseAsync([...args], { from: 'user' });
  assert.ok(parsed !== null);
  return parsed;
}
