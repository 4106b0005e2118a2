/**
 * Reliability case 40a, S5: no shell anywhere in the product. Every child is started with an
 * argv array (execFile/spawn, simple-git, the Engine API), so a prompt or a setting full of
 * `$(…)`, backticks, `;` and `&&` is only ever data. This reads every source file: a new
 * `shell: true` or `exec(` fails here, by name.
 */
import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";

const src = fileURLToPath(new URL("../../src", import.meta.url));
const files = readdirSync(src, { recursive: true, encoding: "utf8" }).filter((f) => f.endsWith(".ts"));

describe("no shell in the product (case 40a)", () => {
  it("reads the sources", () => {
    expect(files.length).toBeGreaterThan(50);
  });

  it.each(files)("%s starts no child through a shell", (file) => {
    const text = readFileSync(join(src, file), "utf8");
    const lines = text.split("\n").map((line, i) => ({ line: line.trim(), at: `${file}:${i + 1}` }));
    const offending = lines.filter(({ line }) =>
      !line.startsWith("//") && !line.startsWith("*") &&
      (/\bshell\s*:\s*(true|["'`])/.test(line) || /(?<![.\w])(exec|execSync)\s*\(/.test(line) || /import\s*\{[^}]*\b(exec|execSync)\b[^}]*\}\s*from\s*["']node:child_process["']/.test(line)),
    );
    expect(offending.map((o) => `${o.at}: ${o.line}`)).toEqual([]);
  });
});
