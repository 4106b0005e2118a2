/**
 * The world's tritonserver stand-in image, built straight from world/images for the tests that
 * run it on their own (without `serve`): the image, a shell runner that never throws, and the
 * fill values of the v0.8.0 templates those tests share.
 */
import { execFile } from "node:child_process";
import { join } from "node:path";
import { BASE_IMAGE } from "../../world/base-image.ts";
import { repoRoot } from "./standins.ts";

export interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

/** Runs a program to its end: its exit code (-1 when it could not run or timed out) and output. */
export function sh(cmd: string, args: readonly string[], timeoutMs = 120_000): Promise<Run> {
  return new Promise((resolve) => {
    execFile(cmd, [...args], { timeout: timeoutMs, maxBuffer: 64 << 20 }, (error, stdout, stderr) => {
      resolve({ code: error ? (typeof error.code === "number" ? error.code : -1) : 0, stdout, stderr });
    });
  });
}

/** One tag for every test file: the second build of the same context is the first one's cache. */
export const tritonStandinImage = "llama3-trt-world/standins-test-tritonserver:latest";

/** Why the image cannot be built here ("" when it can): no engine, or no world base image. */
export async function tritonImageUnavailable(): Promise<string> {
  if ((await sh("docker", ["version", "--format", "{{.Server.Version}}"], 20_000)).code !== 0) return "no Docker engine answers";
  if ((await sh("docker", ["image", "inspect", BASE_IMAGE], 20_000)).code !== 0) return `the world's base image ${BASE_IMAGE} is absent (npm run world:up makes it)`;
  return "";
}

/** Builds the stand-in image from world/images/tritonserver on the world's base. */
export async function buildTritonStandinImage(): Promise<string> {
  const build = await sh(
    "docker",
    ["build", "-q", "-t", tritonStandinImage, "-f", join(repoRoot, "world/images/tritonserver/Dockerfile"), "--build-arg", `BASE=${BASE_IMAGE}`, "--build-arg", "WORLD_RECORDER_URL=", join(repoRoot, "world/images")],
    600_000,
  );
  if (build.code !== 0) throw new Error(`building ${tritonStandinImage} failed:\n${build.stderr}`);
  return tritonStandinImage;
}

/** fill_template.py values of the v0.8.0 models around tensorrt_llm, for a tokenizer at /w/hf. */
export const standinFill: Readonly<Record<string, string>> = {
  preprocessing: "tokenizer_dir:/w/hf,tokenizer_type:auto,triton_max_batch_size:64,preprocessing_instance_count:1",
  postprocessing: "tokenizer_dir:/w/hf,tokenizer_type:auto,triton_max_batch_size:64,postprocessing_instance_count:1",
  tensorrt_llm_bls: "triton_max_batch_size:64,decoupled_mode:True,bls_instance_count:1,accumulate_tokens:False",
  ensemble: "triton_max_batch_size:64",
};
