/**
 * `<root>/env.json`: the world's one output, in the shape world/README.md documents.
 * `env` is what the product reads (put it in the product's environment); `world` is what the
 * tests read; `world.started` is what world:up started, which is what world:down stops.
 */
import { readFile, rename, writeFile } from "node:fs/promises";
import type { WorldConfig } from "./paths.ts";

/** A part of the world that world:up may start and world:down then stops. */
export type StartedPart = "dockerd" | "registry" | "server";
export const STARTED_PARTS: readonly StartedPart[] = ["dockerd", "registry", "server"];

export interface WorldEnv {
  HF_ENDPOINT: string;
  HF_TOKEN: string;
  LLAMA3_TRT_GPUS: "none";
  LLAMA3_TRT_TRTLLM_REPO_URL: string;
  LLAMA3_TRT_BACKEND_REPO_URL: string;
  LLAMA3_TRT_BUILD_IMAGE: string;
  LLAMA3_TRT_BUILD_BASE_IMAGE: string;
  LLAMA3_TRT_TRITON_IMAGE: string;
}

export interface WorldInfo {
  root: string;
  registry: string;
  hubUrl: string;
  cdnUrl: string;
  recorderUrl: string;
  invocationsLog: string;
  hubRequestLog: string;
  images: { triton: string; build: string; cudaDevel: string };
  gitRepos: { trtllm: string; backend: string };
  started: StartedPart[];
}

export interface WorldEnvFile {
  env: WorldEnv;
  world: WorldInfo;
}

export async function readEnvFile(config: WorldConfig): Promise<WorldEnvFile | undefined> {
  let text: string;
  try {
    text = await readFile(config.files.envJson, "utf8");
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === "ENOENT") return undefined;
    throw error;
  }
  return JSON.parse(text) as WorldEnvFile;
}

/** Temp file + rename: a reader never sees half a file, even while world:up rewrites it. */
export async function writeEnvFile(config: WorldConfig, file: WorldEnvFile): Promise<void> {
  const temp = `${config.files.envJson}.${process.pid}.tmp`;
  await writeFile(temp, `${JSON.stringify(file, null, 2)}\n`);
  await rename(temp, config.files.envJson);
}

/** `started` in a stable order, without duplicates. */
export function normalizeStarted(parts: Iterable<StartedPart>): StartedPart[] {
  const set = new Set(parts);
  return STARTED_PARTS.filter((part) => set.has(part));
}
