/**
 * Each of the 40 fault and bad-input cases of the reliability list has at least one test that
 * names it (`(case N)` in its title): removing or renaming the last test of a case fails here.
 * `node scripts/reliability-table.ts` prints the whole table.
 */
import { describe, expect, it } from "vitest";
import { casesCovered } from "../../scripts/reliability-table.ts";

describe("the reliability cases", () => {
  const covered = casesCovered();

  it.each(Array.from({ length: 40 }, (_, i) => i + 1))("case %i has a test", (n) => {
    expect(covered.get(n)?.length ?? 0, `no test names case ${n}`).toBeGreaterThan(0);
  });

  it("reads titles, not just any mention", () => {
    const [first] = covered.get(1) ?? [];
    expect(first?.title).toMatch(/\(cases? (\d+\w*(, | and ))*1\b/);
    expect(first?.file).toMatch(/^test\//);
  });
});
