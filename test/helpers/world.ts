/**
 * The running test world, as the tests see it:
 *
 *   await using world = useWorld();
 *   await runProduct({ env: { ...baseEnv(), ...world.env } });
 *   expect(await world.invocations("trtllm-build")).toBe(1);
 *
 * It reads `<WORLD_ROOT or .world>/env.json` written by world:up (the integration project's
 * globalSetup runs it). The invocation and Hub-request logs grow across tests and runs, so a
 * handle only counts what was recorded after it was made. Disposing it clears the Hub's fault
 * scenario if the test set one.
 */
import { readFileSync, statSync } from "node:fs";
import { open } from "node:fs/promises";
import { worldConfig } from "../../world/paths.ts";
import type { Invocation } from "../../world/server/recorder.ts";
import type { RequestLogEntry } from "../../world/server/request-log.ts";
import type { WorldEnv, WorldEnvFile, WorldInfo } from "../../world/state.ts";

export type { Invocation, RequestLogEntry, WorldEnv, WorldInfo };

export interface World extends AsyncDisposable {
  /** What the product reads: spread it into the product's environment. */
  readonly env: WorldEnv;
  /** Where things are: registry, URLs, logs, image references, git URLs, what world:up started. */
  readonly world: WorldInfo;
  /** How many stand-in runs were recorded since this handle was made (of `tool` only, if given). */
  invocations(tool?: string): Promise<number>;
  /** The recorded runs themselves (tool, argv, cwd, time), since this handle was made. */
  invocationList(tool?: string): Promise<Invocation[]>;
  /** Requests the Hub, CDN and recorder served since this handle was made. */
  hubRequests(): Promise<RequestLogEntry[]>;
  /** Sets the Hub's fault scenario (`POST /_world/scenario`); cleared again on dispose. */
  setScenario(scenario: Record<string, unknown>): Promise<void>;
}

/** Reads env.json, or throws the error that says how to get one. */
export function readWorldFile(env: NodeJS.ProcessEnv = process.env): WorldEnvFile {
  const file = worldConfig(env).files.envJson;
  let text: string;
  try {
    text = readFileSync(file, "utf8");
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === "ENOENT") {
      throw new Error(`the test world is not up (no ${file}): run \`npm run world:up\`, or run the tests with \`--project integration\` so its globalSetup starts it`);
    }
    throw error;
  }
  return JSON.parse(text) as WorldEnvFile;
}

export function useWorld(): World {
  const { env, world } = readWorldFile();
  const invocationsFrom = sizeOf(world.invocationsLog);
  const requestsFrom = sizeOf(world.hubRequestLog);
  let scenarioSet = false;

  const invocationList = async (tool?: string) => {
    const all = await readJsonLines<Invocation>(world.invocationsLog, invocationsFrom);
    return tool === undefined ? all : all.filter((entry) => entry.tool === tool);
  };
  return {
    env,
    world,
    invocationList,
    invocations: async (tool) => (await invocationList(tool)).length,
    hubRequests: () => readJsonLines<RequestLogEntry>(world.hubRequestLog, requestsFrom),
    setScenario: async (scenario) => {
      const response = await fetch(`${world.hubUrl}/_world/scenario`, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify(scenario),
      });
      if (!response.ok) throw new Error(`POST /_world/scenario → ${response.status}: ${await response.text()}`);
      scenarioSet = true;
    },
    [Symbol.asyncDispose]: async () => {
      if (!scenarioSet) return;
      const response = await fetch(`${world.hubUrl}/_world/scenario`, { method: "DELETE" });
      await response.body?.cancel();
    },
  };
}

function sizeOf(file: string): number {
  try {
    return statSync(file).size;
  } catch {
    return 0;
  }
}

/** JSON lines of `file` from byte `offset` on (the file is only ever appended to). */
async function readJsonLines<T>(file: string, offset: number): Promise<T[]> {
  let handle;
  try {
    handle = await open(file, "r");
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === "ENOENT") return [];
    throw error;
  }
  try {
    const { size } = await handle.stat();
    const buffer = Buffer.alloc(Math.max(0, size - offset));
    await handle.read(buffer, 0, buffer.length, offset);
    const lines = buffer.toString("utf8").split("\n");
    // The last piece is a line still being written (or "" after the final newline): skip it.
    lines.pop();
    return lines.filter((line) => line.trim() !== "").map((line) => JSON.parse(line) as T);
  } finally {
    await handle.close();
  }
}
