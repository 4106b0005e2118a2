/**
 * What `npm install` ships is dist/, bundled by esbuild from src/ (`prepare`, scripts/build.ts),
 * while every other test runs src/ directly. A specifier the bundler left unresolved, or a chunk
 * it did not write, breaks the package only (tsc once left the `.ts` of import()s inside a
 * `using` scope, which broke `ask --local` in the package alone). So: every module specifier in
 * dist/ resolves to a file that is there, every module loads, and every command's lazy import()
 * is a chunk of its own (the everyday commands load only what they use).
 */
import { createHash } from "node:crypto";
import { once } from "node:events";
import { existsSync, readdirSync, readFileSync, writeFileSync } from "node:fs";
import { dirname, join, relative, resolve } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import { Worker } from "node:worker_threads";
import { describe, expect, it } from "vitest";
import { tempDir } from "../helpers/tmp.ts";

const dist = fileURLToPath(new URL("../../dist", import.meta.url));
const files = existsSync(dist) ? readdirSync(dist, { recursive: true, encoding: "utf8" }).filter((f) => f.endsWith(".js")) : [];

describe("the shipped dist/", () => {
  it("is built (npm ci runs `prepare`; else `npm run build`)", () => {
    expect(files, `no dist/ in ${dist}: run \`npm run build\``).toContain("cli/main.js");
  });

  it.each(files)("%s imports only files that exist, by their .js names", (file) => {
    const text = readFileSync(join(dist, file), "utf8");
    const specifiers = [...text.matchAll(/(?:\bfrom\s*|\bimport\s*\(\s*|\bimport\s+)["'](\.{1,2}\/[^"']+)["']/g)].map((m) => m[1] as string);
    const broken = specifiers.filter((s) => !s.endsWith(".js") || !existsSync(resolve(dirname(join(dist, file)), s)));
    expect(broken).toEqual([]);
  });

  it("each command is a chunk of its own, and --version's entry point does not import the pipeline", () => {
    const main = readFileSync(join(dist, "cli/main.js"), "utf8");
    const lazy = [...main.matchAll(/\bimport\(\s*["'](\.{1,2}\/[^"']+)["']/g)].map((m) => (m[1] as string).replace(/^.*\//, "").replace(/-[A-Z0-9]+\.js$/, ""));
    expect(lazy).toEqual(expect.arrayContaining(["build", "plan", "status", "serve", "ask", "doctor"]));
    // What main.js loads eagerly: its static imports, and theirs.
    const eager = new Set<string>();
    const visit = (file: string) => {
      if (eager.has(file)) return;
      eager.add(file);
      const text = readFileSync(join(dist, file), "utf8");
      for (const m of text.matchAll(/(?:\bfrom\s*|\bimport\s+)["'](\.{1,2}\/[^"']+)["']/g)) visit(relative(dist, resolve(dirname(join(dist, file)), m[1] as string)));
    };
    visit("cli/main.js");
    const eagerText = [...eager].map((f) => readFileSync(join(dist, f), "utf8")).join("\n");
    // The runner and the Docker SDK are in dist/, just not on --version's path.
    const everything = files.map((f) => readFileSync(join(dist, f), "utf8")).join("\n");
    const holds = (text: string) => ({ runner: /\bPipeline = class\b/.test(text), dockerode: /["']dockerode["']/.test(text) });
    expect(holds(everything)).toEqual({ runner: true, dockerode: true });
    expect(holds(eagerText)).toEqual({ runner: false, dockerode: false });
  });

  it("every module of it loads", async () => {
    for (const file of files) await import(pathToFileURL(join(dist, file)).href);
  });

  it("every worker file a bundle names (new URL(…, import.meta.url)) is there, and the hashing thread runs from it", async () => {
    const named = files.flatMap((file) =>
      [...readFileSync(join(dist, file), "utf8").matchAll(/new URL\(([^;]*?),\s*import\.meta\.url\)/g)].flatMap((m) =>
        [...(m[1] as string).matchAll(/["']([^"']+\.js)["']/g)].map((literal) => resolve(dirname(join(dist, file)), literal[1] as string)),
      ),
    );
    const hashWorker = join(dist, "hub/hash-worker.js");
    expect(named).toContain(hashWorker);
    expect(named.filter((path) => !existsSync(path))).toEqual([]);

    using dir = tempDir();
    const path = join(dir.path, "f");
    writeFileSync(path, "hello");
    const worker = new Worker(hashWorker);
    try {
      worker.postMessage({ kind: "start", id: 1, path, algorithm: "sha256", prefix: "" });
      worker.postMessage({ kind: "advance", id: 1, upTo: 5, digest: true });
      const [reply] = (await once(worker, "message")) as [unknown];
      expect(reply).toEqual({ id: 1, digest: createHash("sha256").update("hello").digest("hex") });
    } finally {
      await worker.terminate();
    }
  });
});
