/**
 * globalSetup of the integration project: brings the test world up (the same code as
 * `npm run world:up`, imported, not shelled out) before any test file runs, and provides its
 * env.json to the tests (`inject("world")`; `useWorld()` in ./world.ts reads the same file).
 *
 * Teardown stops only what this setup itself started (and then removes the product's leftover
 * containers of the world's images): a developer who had the world up before running the tests
 * keeps it up, containers included; CI, which starts from nothing, ends with nothing running.
 * Set WORLD_KEEP=1 to leave everything running after the tests, for a fast next run.
 *
 * Progress goes to `<root>/logs/global-setup.log`; a failure shows the tail of it.
 */
import path from "node:path";
import type { TestProject } from "vitest/node";
import { createLog } from "../../world/log.ts";
import { worldConfig } from "../../world/paths.ts";
import { tail } from "../../world/processes.ts";
import type { WorldEnvFile } from "../../world/state.ts";
import { worldDown, worldUp, WorldUpError } from "../../world/world.ts";

declare module "vitest" {
  export interface ProvidedContext {
    /** The running world's env.json (see world/README.md). */
    world: WorldEnvFile;
  }
}

export default async function setup(project: TestProject): Promise<() => Promise<void>> {
  const config = worldConfig();
  const logFile = path.join(config.files.logs, "global-setup.log");
  const log = createLog({ file: logFile, echo: false, truncate: true });

  let result;
  try {
    result = await worldUp({ log });
  } catch (error) {
    const message = error instanceof Error ? error.message : String(error);
    // Leave nothing half-started behind: stop what this attempt started.
    if (error instanceof WorldUpError && error.startedNow.length > 0) {
      await worldDown({ log, only: error.startedNow, removeContainers: false }).catch(() => {});
    }
    throw new Error(
      `The test world did not come up: ${message}\n\n${await tail(logFile, 40)}\n\n` +
        "Run `npm run world:up` to see it step by step; it resumes where it stopped.",
      { cause: error },
    );
  }
  project.provide("world", result.file);
  const started = result.startedNow.length > 0 ? `started ${result.startedNow.join(", ")}` : "reused a running world";
  process.stderr.write(`test world: ready in ${(result.durationMs / 1000).toFixed(1)} s (${started}; log ${logFile})\n`);

  const startedNow = result.startedNow;
  return async () => {
    // Nothing started here: the world (and any container in it) belongs to whoever started it.
    if (startedNow.length === 0 || process.env["WORLD_KEEP"] === "1") return;
    const down = await worldDown({ log, only: startedNow });
    if (down.stopped.length > 0) process.stderr.write(`test world: stopped ${down.stopped.join(", ")}\n`);
  };
}
