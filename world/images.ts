/**
 * The stand-in images (world/images/<folder>/Dockerfile), built on the debootstrap base and
 * pushed to the local registry under the repository paths and tags the product uses.
 *
 * Build context: the image's own folder at the root, plus `world/images/common/` (when it
 * exists) as `common/`, so a Dockerfile can `COPY tritonserver.py …` and `COPY common/… …`.
 * `__pycache__` and `*.pyc` are never sent.
 *
 * Each image carries a label with a hash of its context, its build args and the base image id;
 * an image whose label matches is not rebuilt, and a registry that already holds the image's
 * digest is not pushed to again. That keeps a warm `world:up` to a few seconds.
 */
import { createHash } from "node:crypto";
import { chmod, copyFile, mkdir, readFile, rm } from "node:fs/promises";
import path from "node:path";
import type Docker from "dockerode";
import { imageLabels } from "./base-image.ts";
import { consumeProgress } from "./docker.ts";
import { type TreeFile, walk } from "./files.ts";
import type { Log } from "./log.ts";
import type { WorldConfig } from "./paths.ts";
import { manifestDigest } from "./registry.ts";

export interface ImageSpec {
  /** Key under `world.images` in env.json. */
  key: "triton" | "build" | "cudaDevel";
  /** Folder under world/images/. */
  folder: string;
  /** Repository path in the registry (what nvcr.io or the product's own build would use). */
  repository: string;
  tag: string;
  /** The env.json `env` variable the product reads this image's reference from. */
  envVar: string;
}

/** The table of world/README.md ("Images"). */
export const WORLD_IMAGES: readonly ImageSpec[] = [
  { key: "triton", folder: "tritonserver", repository: "nvidia/tritonserver", tag: "24.03-trtllm-python-py3", envVar: "LLAMA3_TRT_TRITON_IMAGE" },
  { key: "build", folder: "tensorrt-llm", repository: "llama3-trt/tensorrt-llm", tag: "0.8.0", envVar: "LLAMA3_TRT_BUILD_IMAGE" },
  { key: "cudaDevel", folder: "cuda-devel", repository: "nvidia/cuda", tag: "12.1.0-devel-ubuntu22.04", envVar: "LLAMA3_TRT_BUILD_BASE_IMAGE" },
];

export const HASH_LABEL = "dev.llama3-trt.world.hash";

export function imageRef(registry: string, spec: ImageSpec): string {
  return `${registry}/${spec.repository}:${spec.tag}`;
}

export interface ImageResult {
  spec: ImageSpec;
  ref: string;
  id: string;
  /** The manifest digest the registry holds for `ref`. */
  digest: string;
  built: boolean;
  pushed: boolean;
}

export async function ensureImages(
  docker: Docker,
  config: WorldConfig,
  inputs: { baseImage: string; baseImageId: string; recorderUrl: string },
  log: Log,
): Promise<ImageResult[]> {
  const results: ImageResult[] = [];
  for (const spec of WORLD_IMAGES) {
    results.push(await ensureImage(docker, config, spec, inputs, log));
  }
  return results;
}

async function ensureImage(
  docker: Docker,
  config: WorldConfig,
  spec: ImageSpec,
  inputs: { baseImage: string; baseImageId: string; recorderUrl: string },
  log: Log,
): Promise<ImageResult> {
  const ref = imageRef(config.registry, spec);
  const files = await contextFiles(config, spec);
  const buildargs = { BASE: inputs.baseImage, WORLD_RECORDER_URL: inputs.recorderUrl };
  const hash = await contextHash(files, { buildargs, baseImageId: inputs.baseImageId });

  let image = await imageLabels(docker, ref);
  let built = false;
  if (image && image.labels[HASH_LABEL] === hash) {
    log(`image ${ref}: up to date`);
  } else {
    log(`image ${ref}: ${image ? "inputs changed, rebuilding" : "building"} from world/images/${spec.folder}`);
    await build(docker, config, spec, files, { ref, buildargs, hash }, log);
    const previous = image;
    image = await imageLabels(docker, ref);
    if (!image || image.labels[HASH_LABEL] !== hash) throw new Error(`docker build of ${ref} finished but the image does not carry label ${HASH_LABEL}=${hash}`);
    built = true;
    // The replaced image is now untagged; drop it unless a container still uses it.
    if (previous && previous.id !== image.id) await docker.getImage(previous.id).remove().catch(() => {});
  }

  const { digest, pushed } = await pushIfNeeded(docker, config, spec, ref, log);
  return { spec, ref, id: image.id, digest, built, pushed };
}

/** The files of the image's folder, then those of world/images/common/ under `common/`. */
async function contextFiles(config: WorldConfig, spec: ImageSpec): Promise<TreeFile[]> {
  const imagesDir = path.join(config.repoRoot, "world", "images");
  const own = path.join(imagesDir, spec.folder);
  const ownFiles = await walk(own);
  if (!ownFiles.some((file) => file.name === "Dockerfile")) {
    throw new Error(`world/images/${spec.folder}/Dockerfile is missing: the image ${spec.repository}:${spec.tag} cannot be built`);
  }
  const commonFiles = (await walk(path.join(imagesDir, "common"))).map((file) => ({ ...file, name: `common/${file.name}` }));
  if (commonFiles.length > 0 && ownFiles.some((file) => file.name.startsWith("common/"))) {
    throw new Error(`world/images/${spec.folder}/common/ clashes with the shared world/images/common/ in the build context`);
  }
  return [...ownFiles, ...commonFiles];
}

/** sha256 over names, exec bits and contents of the context, plus the build inputs. */
async function contextHash(files: readonly TreeFile[], inputs: unknown): Promise<string> {
  const hash = createHash("sha256");
  hash.update(JSON.stringify(inputs));
  for (const file of files) {
    const executable = (file.mode & 0o111) !== 0;
    const content = await readFile(file.source);
    hash.update(`\0${file.name}\0${executable ? "x" : "-"}\0${content.length}\0`);
    hash.update(content);
  }
  return hash.digest("hex");
}

async function build(
  docker: Docker,
  config: WorldConfig,
  spec: ImageSpec,
  files: readonly TreeFile[],
  options: { ref: string; buildargs: Record<string, string>; hash: string },
  log: Log,
): Promise<void> {
  // The context is staged in one folder because it comes from two (the image's and common/).
  const staging = path.join(config.files.cache, `build-context-${spec.folder}`);
  await rm(staging, { recursive: true, force: true });
  for (const file of files) {
    const target = path.join(staging, file.name);
    await mkdir(path.dirname(target), { recursive: true });
    await copyFile(file.source, target);
    await chmod(target, file.mode);
  }
  try {
    const stream = await docker.buildImage(
      { context: staging, src: files.map((file) => file.name) },
      {
        t: options.ref,
        buildargs: options.buildargs,
        labels: { [HASH_LABEL]: options.hash },
        // The base is local (docker import): never try to pull it.
        pull: false,
        rm: true,
        forcerm: true,
      } as Docker.ImageBuildOptions,
    );
    await consumeProgress(stream, `docker build of ${options.ref} (world/images/${spec.folder})`, log);
  } finally {
    await rm(staging, { recursive: true, force: true });
  }
}

async function pushIfNeeded(
  docker: Docker,
  config: WorldConfig,
  spec: ImageSpec,
  ref: string,
  log: Log,
): Promise<{ digest: string; pushed: boolean }> {
  const name = `${config.registry}/${spec.repository}`;
  const held = await manifestDigest(config.registry, spec.repository, spec.tag);
  const repoDigests = (await docker.getImage(ref).inspect()).RepoDigests ?? [];
  if (held && repoDigests.includes(`${name}@${held}`)) {
    log(`image ${ref}: the registry holds it (${held.slice(0, 19)}…)`);
    return { digest: held, pushed: false };
  }
  log(`image ${ref}: pushing to ${config.registry}`);
  // The engine rejects a push without an X-Registry-Auth header, even for a registry without auth.
  const stream = (await docker.getImage(name).push({ tag: spec.tag, authconfig: {} } as Record<string, unknown>)) as NodeJS.ReadableStream;
  const events = await consumeProgress(stream, `docker push of ${ref}`, log);
  const pushedDigest = events.map((event) => event.aux?.["Digest"]).find((value): value is string => typeof value === "string");
  const now = await manifestDigest(config.registry, spec.repository, spec.tag);
  if (!now || (pushedDigest && now !== pushedDigest)) {
    throw new Error(`pushed ${ref} but the registry holds ${now ?? "nothing"} for it (push reported ${pushedDigest ?? "no digest"})`);
  }
  log(`image ${ref}: pushed (${now.slice(0, 19)}…)`);
  return { digest: now, pushed: true };
}
