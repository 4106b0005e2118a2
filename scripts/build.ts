// Builds what npm ships: dist/, one bundle of src/ per entry point with shared chunks, made by
// esbuild. Bundled, the CLI loads a few files instead of a hundred modules at every start (the
// everyday commands' cost is mostly module loading; measured by bench/noop-build.ts). Lazy
// import()s stay lazy: each becomes a chunk loaded only by the command that needs it. Packages
// stay external (npm installs them). Type checking is tsc's job (`npm run typecheck`).
//   node scripts/build.ts
import { readdirSync, rmSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { build } from "esbuild";

const root = fileURLToPath(new URL("..", import.meta.url));
const src = join(root, "src");
// The CLI, and any module run as its own thread or process (named *-worker.ts), which must stay
// a file of its own.
const workers = readdirSync(src, { recursive: true, encoding: "utf8" }).filter((f) => f.endsWith("-worker.ts"));
const entryPoints = [join(src, "cli/main.ts"), ...workers.map((f) => join(src, f))];

rmSync(join(root, "dist"), { recursive: true, force: true });
await build({
  entryPoints,
  outbase: src,
  outdir: join(root, "dist"),
  bundle: true,
  splitting: true,
  format: "esm",
  platform: "node",
  target: "node22",
  packages: "external",
  chunkNames: "chunks/[name]-[hash]",
  sourcemap: true,
  logLevel: "warning",
});
