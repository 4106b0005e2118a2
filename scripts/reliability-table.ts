/**
 * Prints which tests cover each of the 40 fault and bad-input cases of the reliability list
 * (`case N` in a test's or a describe's title): `node scripts/reliability-table.ts [--markdown]`.
 * test/unit/reliability-cases.test.ts fails when a case has no test at all.
 */
import { readdirSync, readFileSync } from "node:fs";
import { join, relative } from "node:path";
import { fileURLToPath } from "node:url";

export interface CaseTest {
  readonly file: string;
  readonly line: number;
  readonly title: string;
}

const root = fileURLToPath(new URL("..", import.meta.url));

/** Every `it`/`describe` title under test/ that names reliability cases, by case number. */
export function casesCovered(testDir = join(root, "test")): Map<number, CaseTest[]> {
  const byCase = new Map<number, CaseTest[]>();
  for (const name of readdirSync(testDir, { recursive: true, encoding: "utf8" })) {
    if (!name.endsWith(".test.ts")) continue;
    const path = join(testDir, name);
    readFileSync(path, "utf8")
      .split("\n")
      .forEach((text, index) => {
        // `it("…")`, `describe("…")`, `it.skipIf(…)("…")`, and the title line of a multi-line `it.each([…])("…")`.
        const title = /(?:\b(?:it|describe|it\.each\([^)]*\)|it\.skipIf\([^)]*\))|^\s*\]\))\s*\(\s*(["'`])(.*?)\1/.exec(text)?.[2];
        if (!title) return;
        for (const match of title.matchAll(/\(cases? ([^)]*)\)/g)) {
          for (const part of (match[1] as string).split(/,\s*|\s+and\s+/)) {
            const number = Number(/^\d+/.exec(part)?.[0]);
            if (!Number.isInteger(number) || number < 1 || number > 40) continue;
            const list = byCase.get(number) ?? [];
            list.push({ file: relative(root, path), line: index + 1, title });
            byCase.set(number, list);
          }
        }
      });
  }
  return byCase;
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const covered = casesCovered();
  const markdown = process.argv.includes("--markdown");
  if (markdown) console.log("| case | tests (file:line) |\n|---|---|");
  for (let n = 1; n <= 40; n++) {
    const tests = covered.get(n) ?? [];
    const where = tests.map((t) => `${t.file}:${t.line}`).join(", ") || "NONE";
    console.log(markdown ? `| ${n} | ${where} |` : `${String(n).padStart(2)}  ${where}`);
  }
}
