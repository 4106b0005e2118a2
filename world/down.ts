/**
 * `npm run world:down`: stops the world server, the registry and dockerd if (and only if)
 * world:up started them, after removing the product's containers that tests left behind.
 * Images, registry data and git repositories stay, so the next world:up is fast.
 */
import path from "node:path";
import { createLog } from "./log.ts";
import { worldConfig } from "./paths.ts";
import { worldDown } from "./world.ts";

const config = worldConfig();
const logFile = path.join(config.files.logs, "down.log");
const log = createLog({ file: logFile, echo: true, truncate: true });
try {
  const result = await worldDown({ log });
  const parts = [
    result.stopped.length ? `stopped ${result.stopped.join(", ")}` : "nothing of the world's own was running",
    result.removedContainers ? `removed ${result.removedContainers} leftover container(s)` : "",
  ].filter(Boolean);
  process.stdout.write(`world:down: ${parts.join("; ")}\n`);
} catch (error) {
  const message = error instanceof Error ? error.message : String(error);
  process.stderr.write(`\nworld:down failed: ${message}\n\nFull log: ${logFile}\n`);
  process.exitCode = 1;
}
