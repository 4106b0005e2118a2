/**
 * `npm run world:up`: starts the test world, or reuses what is already there, and writes
 * `<root>/env.json`. Progress goes to stderr and `<root>/logs/up.log`; the summary to stdout.
 */
import path from "node:path";
import { createLog } from "./log.ts";
import { worldConfig } from "./paths.ts";
import { worldUp } from "./world.ts";

const config = worldConfig();
const logFile = path.join(config.files.logs, "up.log");
const log = createLog({ file: logFile, echo: true, truncate: true });
try {
  const result = await worldUp({ log });
  process.stdout.write(
    [`world:up: ready in ${(result.durationMs / 1000).toFixed(1)} s`, ...result.summary.map((line) => `  ${line}`), ""].join("\n"),
  );
} catch (error) {
  const message = error instanceof Error ? error.message : String(error);
  process.stderr.write(`\nworld:up failed: ${message}\n\nFull log: ${logFile}. Fix the cause and run \`npm run world:up\` again (it resumes); \`npm run world:down\` stops what it started.\n`);
  process.exitCode = 1;
}
