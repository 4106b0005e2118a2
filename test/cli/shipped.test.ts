/**
 * What `npm install` ships is dist/, built by tsc from src/ (`prepare`), while every other test
 * runs src/ directly. tsc rewrites the `.ts` of relative imports to `.js` — but not always (it
 * missed the import()s inside a `using` scope once, which broke `ask --local` in the package
 * only). So: every module specifier in dist/ resolves to a file that is there, and every module
 * loads.
 */
import { existsSync, readdirSync, readFileSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import { describe, expect, it } from "vitest";

const dist = fileURLToPath(new URL("../../dist", import.meta.url));
const files = existsSync(dist) ? readdirSync(dist, { recursive: true, encoding: "utf8" }).filter((f) => f.endsWith(".js")) : [];

describe("the shipped dist/", () => {
  it("is built (npm ci runs `prepare`; else `npm run build`)", () => {
    expect(files.length, `no dist/ in ${dist}: run \`npm run build\``).toBeGreaterThan(50);
  });

  it.each(files)("%s imports only files that exist, by their .js names", (file) => {
    const text = readFileSync(join(dist, file), "utf8");
    const specifiers = [...text.matchAll(/(?:\bfrom\s*|\bimport\s*\(\s*|\bimport\s+)["'](\.{1,2}\/[^"']+)["']/g)].map((m) => m[1] as string);
    const broken = specifiers.filter((s) => !s.endsWith(".js") || !existsSync(resolve(dirname(join(dist, file)), s)));
    expect(broken).toEqual([]);
  });

  it("every module of it loads", async () => {
    for (const file of files) await import(pathToFileURL(join(dist, file)).href);
  });
});
