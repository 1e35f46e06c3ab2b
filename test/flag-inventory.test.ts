/**
 * docs/cli-flags.md lists every flag of every onebit command with the test that proves it takes effect (or
 * is refused where it would do nothing). This keeps the page honest: the flags are read from the program
 * itself, so a new flag without a row fails here, as does a row for a flag no command has; every row cites
 * a test (or says "no test yet", and there are exactly NO_TEST_YET of those); and every cited file exists
 * and holds the cited title.
 */
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import type { Command } from 'commander';
import { buildProgram } from '../src/cli/program.js';
import { methodFlagOptions } from '../src/cli/method-flags.js';

const ROOT = join(import.meta.dirname, '..');
const PAGE = join(ROOT, 'docs', 'cli-flags.md');
/** The section of the flags the methods declare, shared by the commands in METHOD_FLAG_COMMANDS. */
const METHOD_SECTION = 'Method flags (onebit train and onebit continual)';
const METHOD_FLAG_COMMANDS = ['onebit train', 'onebit continual'];
/** Rows whose "Proved by" says "no test yet": adding one more (or proving one) must update this count. */
const NO_TEST_YET = 0;

interface Citation {
  readonly file: string;
  readonly title: string;
}

interface Row {
  readonly flag: string;
  readonly what: string;
  readonly citations: readonly Citation[];
  readonly noTestYet: boolean;
}

const CITATION = /`([^`]+)` "([^"]+)"/g;

/** The page's tables: each `## ` heading with the rows of the table under it. */
function readPage(): Map<string, Row[]> {
  const sections = new Map<string, Row[]>();
  let rows: Row[] | null = null;
  for (const line of readFileSync(PAGE, 'utf8').split('\n')) {
    const heading = /^## (.+)$/.exec(line);
    if (heading !== null) {
      assert.ok(!sections.has(heading[1]), `section "${heading[1]}" appears twice`);
      rows = [];
      sections.set(heading[1], rows);
      continue;
    }
    if (!line.startsWith('|') || line.startsWith('| Flag |') || line.startsWith('| ---')) continue;
    assert.ok(rows !== null, `a table row before any section: ${line}`);
    const cells = line.split('|').slice(1, -1);
    assert.equal(cells.length, 3, `a row of three cells: ${line}`);
    const [flagCell, what, proof] = cells.map((c) => c.trim());
    const flag = /^`(--[a-z0-9-]+)`$/.exec(flagCell);
    assert.ok(flag !== null, `the Flag cell is one flag in backticks: ${flagCell}`);
    const citations = [...proof.matchAll(CITATION)].map((m) => ({ file: m[1], title: m[2] }));
    const noTestYet = proof === 'no test yet';
    // Nothing in the cell but citations and the semicolons between them.
    assert.equal(proof.replace(CITATION, '').replace(/[;\s]/g, ''), noTestYet ? 'notestyet' : '', line);
    rows.push({ flag: flag[1], what, citations, noTestYet });
  }
  return sections;
}

/** Every command of the program by its full name ("onebit", "onebit train", "onebit model show", ...). */
function commands(): Map<string, Command> {
  const all = new Map<string, Command>();
  const walk = (command: Command, name: string): void => {
    all.set(name, command);
    for (const sub of command.commands) walk(sub, `${name} ${sub.name()}`);
  };
  walk(buildProgram(), 'onebit');
  return all;
}

/** A command's flags as commander spells them; the program's include --help and --version. */
function flagsOf(command: Command, name: string): string[] {
  const options = name === 'onebit' ? command.createHelp().visibleOptions(command) : command.options;
  return options.map((o) => o.long).filter((l): l is string => l !== undefined);
}

const sorted = (flags: Iterable<string>): string[] => [...flags].sort();

describe('docs/cli-flags.md', () => {
  const page = readPage();
  const program = commands();
  // The flags under the methods' headings: what they declare, and BayesBiNN's --posterior.
  const methodFlags = new Set<string>(
    methodFlagOptions().flatMap((o) => (o.long === undefined ? [] : [o.long])),
  );

  test('every flag of every command has one row, and every row is a flag of its command', () => {
    for (const [name, command] of program) {
      const rows = page.get(name) ?? [];
      const documented = rows.map((r) => r.flag);
      assert.equal(new Set(documented).size, documented.length, `${name}: a flag with two rows`);
      const flags = flagsOf(command, name);
      if (METHOD_FLAG_COMMANDS.includes(name)) {
        // The method flags are in their own section; the command's section has the rest.
        assert.deepEqual(
          sorted(flags.filter((f) => !methodFlags.has(f))),
          sorted(documented.filter((f) => !methodFlags.has(f))),
          `${name}: its section's flags`,
        );
        for (const f of documented) assert.ok(flags.includes(f), `${name}: ${f} is not one of its flags`);
        for (const f of methodFlags) assert.ok(flags.includes(f), `${name} lacks the method flag ${f}`);
      } else {
        assert.deepEqual(sorted(flags), sorted(documented), `${name}: its flags against its section's rows`);
      }
    }
    const methodRows = (page.get(METHOD_SECTION) ?? []).map((r) => r.flag);
    assert.equal(new Set(methodRows).size, methodRows.length, 'a method flag with two rows');
    assert.deepEqual(sorted(methodRows), sorted(methodFlags), 'the method flags against their section');
    // No section for a command the program does not have (a renamed or removed one).
    for (const section of page.keys()) {
      assert.ok(section === METHOD_SECTION || program.has(section), `section "${section}" names no command`);
    }
  });

  test('every row says what the flag does and cites a test, or says "no test yet"', () => {
    let noTestYet = 0;
    for (const [section, rows] of page) {
      for (const row of rows) {
        assert.ok(row.what.length > 0, `${section} ${row.flag}: what it does`);
        if (row.noTestYet) noTestYet++;
        else assert.ok(row.citations.length > 0, `${section} ${row.flag}: no citation`);
      }
    }
    assert.equal(noTestYet, NO_TEST_YET, 'rows without a test');
  });

  test('each cited file is a test file that exists and holds the cited title', () => {
    const texts = new Map<string, string>();
    let citations = 0;
    for (const [section, rows] of page) {
      for (const row of rows) {
        for (const { file, title } of row.citations) {
          const where = `${section} ${row.flag}: \`${file}\``;
          assert.match(file, /^(src|test)\/.*\.(test|faults)\.ts$/, `${where} is not a test file`);
          const path = join(ROOT, file);
          assert.ok(existsSync(path), `${where} does not exist`);
          if (!texts.has(file)) texts.set(file, readFileSync(path, 'utf8'));
          assert.ok(texts.get(file)?.includes(title), `${where} has no test "${title}"`);
          citations++;
        }
      }
    }
    assert.ok(citations > 0);
  });
});
