/**
 * The base of every stand-in image: a minimal Debian bookworm root made with debootstrap and
 * `docker import`ed. No image can be pulled here (only Debian's and npm's registries are
 * reachable), so the base is made from Debian packages. The root filesystem tarball is kept
 * under the world's cache folder so that re-importing after `docker system prune` takes
 * seconds instead of a new debootstrap.
 */
import { createHash } from "node:crypto";
import { mkdir, readdir, readFile, rename, rm } from "node:fs/promises";
import path from "node:path";
import type Docker from "dockerode";
import { execa } from "execa";
import { ensureProgram } from "./apt.ts";
import { consumeProgress } from "./docker.ts";
import { exists } from "./files.ts";
import type { Log } from "./log.ts";
import type { WorldConfig } from "./paths.ts";

export const BASE_IMAGE = "llama3-trt-world/debian:bookworm";

/** What goes into the root; a change to any of it makes a new base (and so new images). */
const RECIPE = {
  suite: "bookworm",
  variant: "minbase",
  // python3 runs the stand-ins; protobuf for the Triton model_config schema; grpcio for the Triton
  // stand-in's GRPCInferenceService; procps for `ps`/`pkill` inside containers (the product's stop
  // logic and tests look at container processes).
  include: ["python3", "python3-protobuf", "python3-grpcio", "protobuf-compiler", "procps"],
} as const;

export const BASE_LABEL = "dev.llama3-trt.world.base";
const BASE_INCLUDE_LABEL = "dev.llama3-trt.world.debootstrap-include";

export function baseRecipeHash(): string {
  return createHash("sha256").update(JSON.stringify(RECIPE)).digest("hex");
}

export interface BaseImage {
  id: string;
  /** How we got it this time. */
  source: "reused" | "cached tarball" | "debootstrap";
}

export async function ensureBaseImage(docker: Docker, config: WorldConfig, log: Log): Promise<BaseImage> {
  const recipe = baseRecipeHash();
  const existing = await imageLabels(docker, BASE_IMAGE);
  if (existing && existing.labels[BASE_LABEL] === recipe) {
    log(`base image: ${BASE_IMAGE} is up to date, reusing it`);
    return { id: existing.id, source: "reused" };
  }
  const tarball = path.join(config.files.cache, `debian-${RECIPE.suite}-${recipe.slice(0, 16)}.tar`);
  let source: BaseImage["source"] = "cached tarball";
  if (!(await exists(tarball))) {
    source = "debootstrap";
    await debootstrapTarball(config, tarball, log);
  } else {
    log(`base image: importing the cached root ${tarball}`);
  }
  const stream = await docker.importImage(tarball, {
    repo: BASE_IMAGE.split(":")[0],
    tag: BASE_IMAGE.split(":")[1],
    changes: [
      `LABEL ${BASE_LABEL}=${recipe}`,
      `LABEL ${BASE_INCLUDE_LABEL}=${RECIPE.include.join(",")}`,
      "ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
      "ENV LANG=C.UTF-8",
      'CMD ["/bin/bash"]',
    ],
  } as Record<string, unknown>);
  await consumeProgress(stream, `docker import of ${BASE_IMAGE}`, log);
  const imported = await imageLabels(docker, BASE_IMAGE);
  if (!imported || imported.labels[BASE_LABEL] !== recipe) {
    throw new Error(`docker import reported success but ${BASE_IMAGE} does not carry the expected ${BASE_LABEL} label`);
  }
  log(`base image: imported ${BASE_IMAGE} (${imported.id.slice(7, 19)})`);
  return { id: imported.id, source };
}

/** debootstrap into a scratch folder, pack it into `tarball`, remove the scratch folder. */
async function debootstrapTarball(config: WorldConfig, tarball: string, log: Log): Promise<void> {
  const debootstrap = await ensureProgram("debootstrap", "debootstrap", log, ["debian-archive-keyring"]);
  await mkdir(config.files.cache, { recursive: true });
  const rootfs = path.join(config.files.cache, `rootfs.${process.pid}`);
  await removeRoot(rootfs);
  const started = Date.now();
  log(`base image: debootstrap ${RECIPE.variant} ${RECIPE.suite} with ${RECIPE.include.join(", ")} (about 70 s; log ${log.file ?? "-"})`);
  try {
    const args = [`--variant=${RECIPE.variant}`, `--include=${RECIPE.include.join(",")}`, RECIPE.suite, rootfs, config.debianMirror];
    const result = await execa(debootstrap, args, {
      all: true,
      reject: false,
      stdin: "ignore",
      env: { ...process.env, DEBIAN_FRONTEND: "noninteractive" },
    });
    log.detail?.(result.all ?? "");
    if (result.exitCode !== 0) {
      const debootstrapLog = await readFile(path.join(rootfs, "debootstrap", "debootstrap.log"), "utf8").catch(() => "");
      const lastLines = `${result.all ?? ""}\n${debootstrapLog}`.trimEnd().split("\n").slice(-25).join("\n");
      throw new Error(`debootstrap failed with exit code ${result.exitCode} (is ${config.debianMirror} reachable? set WORLD_DEBIAN_MIRROR to another Debian mirror):\n${lastLines}`);
    }
    log(`base image: debootstrap done in ${Math.round((Date.now() - started) / 1000)} s, packing the root`);
    await unmountUnder(rootfs);
    // What official Debian images leave out too: package lists and the apt cache.
    for (const dir of ["var/lib/apt/lists", "var/cache/apt"]) {
      await removeFilesUnder(path.join(rootfs, dir));
    }
    const partial = `${tarball}.partial`;
    await execa(
      "tar",
      ["--numeric-owner", "--xattrs", "-C", rootfs, "--exclude=./dev/*", "--exclude=./proc/*", "--exclude=./sys/*", "-cf", partial, "."],
      { stdin: "ignore" },
    );
    // Older tarballs are of recipes no longer asked for.
    for (const name of await readdir(config.files.cache)) {
      if (name.startsWith(`debian-${RECIPE.suite}-`) && name.endsWith(".tar")) await rm(path.join(config.files.cache, name), { force: true });
    }
    await rename(partial, tarball);
  } finally {
    await removeRoot(rootfs);
  }
}

/**
 * Removes a debootstrap root. A debootstrap that failed halfway can leave /proc or /sys mounted
 * inside it; deleting through a mount would reach the host's own files, so unmount first.
 */
async function removeRoot(rootfs: string): Promise<void> {
  await unmountUnder(rootfs);
  await rm(rootfs, { recursive: true, force: true });
}

async function unmountUnder(dir: string): Promise<void> {
  const mounts = (await readFile("/proc/self/mounts", "utf8"))
    .split("\n")
    .map((line) => (line.split(" ")[1] ?? "").replace(/\\040/g, " "))
    .filter((mountpoint) => mountpoint.startsWith(`${dir}/`))
    .sort((a, b) => b.length - a.length);
  for (const mountpoint of mounts) {
    await execa("umount", ["-l", mountpoint], { reject: false, stdin: "ignore" });
  }
}

/** Deletes the files below `dir` and keeps the folders (apt expects e.g. lists/partial to exist). */
async function removeFilesUnder(dir: string): Promise<void> {
  let entries;
  try {
    entries = await readdir(dir, { withFileTypes: true });
  } catch {
    return;
  }
  for (const entry of entries) {
    const full = path.join(dir, entry.name);
    if (entry.isDirectory()) await removeFilesUnder(full);
    else if (entry.name !== "lock") await rm(full, { force: true });
  }
}

/** Image id and labels, or undefined when the engine has no such image. */
export async function imageLabels(docker: Docker, ref: string): Promise<{ id: string; labels: Record<string, string> } | undefined> {
  try {
    const info = await docker.getImage(ref).inspect();
    return { id: info.Id, labels: info.Config?.Labels ?? {} };
  } catch (error) {
    if ((error as { statusCode?: number }).statusCode === 404) return undefined;
    throw error;
  }
}
