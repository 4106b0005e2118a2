/**
 * The stand-in for nvcr.io and the other registries: Debian's `docker-registry` (distribution
 * 2.8) on 127.0.0.1, no auth, storage under the world root. Docker treats 127.0.0.0/8
 * registries as insecure by default, so plain HTTP push and pull work without configuring the
 * engine.
 */
import { mkdir, writeFile } from "node:fs/promises";
import path from "node:path";
import { ensureProgram } from "./apt.ts";
import type { Log } from "./log.ts";
import { httpStatus } from "./net.ts";
import type { WorldConfig } from "./paths.ts";
import { livePid, removeFile, spawnDetached, stopProcess, tail, waitUntil } from "./processes.ts";

/** Whether a registry answers the v2 API on the world's registry address. */
export async function registryAnswers(config: WorldConfig): Promise<number | undefined> {
  return httpStatus(`http://${config.registry}/v2/`);
}

export async function ensureRegistry(config: WorldConfig, log: Log): Promise<{ started: boolean }> {
  const status = await registryAnswers(config);
  if (status === 200) {
    const ours = await livePid(config.files.registryPid, "docker-registry");
    log(`registry: ${config.registry} answers${ours ? ` (started by the world, pid ${ours})` : ""}, reusing it`);
    return { started: false };
  }
  if (status !== undefined) {
    throw new Error(
      `something else answers on ${config.registry} (GET /v2/ → ${status}, not an open registry): stop it or set WORLD_REGISTRY_PORT to a free port`,
    );
  }
  // A registry of ours that no longer answers (hung, or its port was taken over): replace it.
  const stale = await livePid(config.files.registryPid, "docker-registry");
  if (stale !== undefined) {
    log(`registry: pid ${stale} does not answer, stopping it`);
    await stopProcess(stale, 10_000);
  }
  const program = await ensureProgram("docker-registry", "docker-registry", log);
  await writeRegistryConfig(config);
  log(`registry: starting ${program} on ${config.registry} (log ${config.files.registryLog})`);
  const child = await spawnDetached(program, ["serve", config.files.registryConfig], {
    logFile: config.files.registryLog,
    pidFile: config.files.registryPid,
  });
  await waitUntil(
    `the registry on ${config.registry} did not come up`,
    async () => ((await registryAnswers(config)) === 200 ? true : undefined),
    { timeoutMs: 30_000, exited: child.exited, describe: () => tail(config.files.registryLog) },
  );
  log(`registry: answers (pid ${child.pid})`);
  return { started: true };
}

async function writeRegistryConfig(config: WorldConfig): Promise<void> {
  await mkdir(config.files.registryData, { recursive: true });
  await mkdir(path.dirname(config.files.registryConfig), { recursive: true });
  // JSON strings are valid YAML scalars: paths with any characters stay quoted correctly.
  const yaml = [
    "# written by llama3-trt world:up; rewritten on every start",
    "version: 0.1",
    "log:",
    "  level: info",
    "  fields:",
    "    service: llama3-trt-world-registry",
    "storage:",
    "  filesystem:",
    `    rootdirectory: ${JSON.stringify(config.files.registryData)}`,
    "  delete:",
    "    enabled: true",
    "http:",
    `  addr: ${JSON.stringify(config.registry)}`,
    "  headers:",
    "    X-Content-Type-Options: [nosniff]",
    "",
  ].join("\n");
  await writeFile(config.files.registryConfig, yaml);
}

export async function stopRegistry(config: WorldConfig, log: Log): Promise<void> {
  const pid = await livePid(config.files.registryPid, "docker-registry");
  if (pid === undefined) {
    log("registry: the registry the world started is not running");
  } else {
    const how = await stopProcess(pid, 10_000);
    log(`registry: stopped (pid ${pid}, ${how})`);
  }
  await removeFile(config.files.registryPid);
}

/** What `docker push` of schema-2 images produces, and what a pull may get back. */
const MANIFEST_TYPES = [
  "application/vnd.docker.distribution.manifest.v2+json",
  "application/vnd.docker.distribution.manifest.list.v2+json",
  "application/vnd.oci.image.manifest.v1+json",
  "application/vnd.oci.image.index.v1+json",
].join(", ");

/** The digest the registry holds for `repository:tag`, or undefined when it holds none. */
export async function manifestDigest(registry: string, repository: string, tag: string): Promise<string | undefined> {
  const response = await fetch(`http://${registry}/v2/${repository}/manifests/${tag}`, {
    method: "HEAD",
    headers: { Accept: MANIFEST_TYPES },
    signal: AbortSignal.timeout(10_000),
  });
  if (response.status === 404) return undefined;
  if (!response.ok) throw new Error(`registry ${registry}: HEAD manifest ${repository}:${tag} → ${response.status}`);
  return response.headers.get("docker-content-digest") ?? undefined;
}
