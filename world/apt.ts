/**
 * Installing the Debian packages the world runs on (docker.io, docker-registry, debootstrap,
 * git) when a fresh machine lacks them. Only Debian's own archive is reachable from CI, so
 * these come from apt and nowhere else.
 */
import { access, constants, readdir, rm, writeFile } from "node:fs/promises";
import path from "node:path";
import { execa } from "execa";
import { exists } from "./files.ts";
import type { Log } from "./log.ts";

/** Looks a program up on PATH and in the sbin folders (root's PATH lacks them in some shells). */
export async function findExecutable(name: string): Promise<string | undefined> {
  const dirs = [...(process.env["PATH"] ?? "").split(":"), "/usr/local/sbin", "/usr/sbin", "/sbin"];
  for (const dir of dirs) {
    if (!dir) continue;
    const candidate = path.join(dir, name);
    try {
      await access(candidate, constants.X_OK);
      return candidate;
    } catch {
      // not here
    }
  }
  return undefined;
}

/**
 * The path of `program`, installing Debian's `pkg` first when it is missing.
 * Package maintainer scripts must not start services (the docker.io and docker-registry
 * packages would start a system dockerd or a registry on :5000 that the world did not ask for
 * and could not stop cleanly), so a `policy-rc.d` that denies starts is in place during the
 * install unless the machine already has one.
 */
export async function ensureProgram(program: string, pkg: string, log: Log, extraPackages: string[] = []): Promise<string> {
  const found = await findExecutable(program);
  if (found) return found;
  log(`${program} is missing: installing Debian's ${[pkg, ...extraPackages].join(", ")} with apt-get`);
  await aptInstall([pkg, ...extraPackages], log);
  const installed = await findExecutable(program);
  if (!installed) throw new Error(`apt-get installed ${pkg} but ${program} is still not on PATH`);
  return installed;
}

const POLICY_RC_D = "/usr/sbin/policy-rc.d";

async function aptInstall(packages: string[], log: Log): Promise<void> {
  if (process.getuid?.() !== 0) {
    throw new Error(`installing ${packages.join(", ")} needs root: run \`apt-get install ${packages.join(" ")}\` as root, then retry`);
  }
  const env = { ...process.env, DEBIAN_FRONTEND: "noninteractive" };
  const ownPolicy = !(await exists(POLICY_RC_D));
  if (ownPolicy) await writeFile(POLICY_RC_D, "#!/bin/sh\n# written by llama3-trt world:up during apt-get install\nexit 101\n", { mode: 0o755 });
  try {
    if (!(await hasPackageLists())) await aptGet(["update"], env, log);
    const install = ["install", "-y", "--no-install-recommends", "-o", "DPkg::Lock::Timeout=300", ...packages];
    try {
      await aptGet(install, env, log);
    } catch (error) {
      // Stale package lists name files the mirror no longer has: refresh once and retry.
      log(`apt-get install failed (${firstLine(error)}); running apt-get update and retrying`);
      await aptGet(["update"], env, log);
      await aptGet(install, env, log);
    }
  } finally {
    if (ownPolicy) await rm(POLICY_RC_D, { force: true });
  }
}

async function aptGet(args: string[], env: NodeJS.ProcessEnv, log: Log): Promise<void> {
  const result = await execa("apt-get", args, { env, all: true, reject: false, stdin: "ignore" });
  log.detail?.(result.all ?? "");
  if (result.exitCode !== 0) {
    const lastLines = (result.all ?? "").trimEnd().split("\n").slice(-15).join("\n");
    throw new Error(`apt-get ${args.join(" ")} failed with exit code ${result.exitCode}:\n${lastLines}`);
  }
}

async function hasPackageLists(): Promise<boolean> {
  try {
    return (await readdir("/var/lib/apt/lists")).some((name) => name.endsWith("_Packages") || name.includes("_Packages."));
  } catch {
    return false;
  }
}

function firstLine(error: unknown): string {
  return (error instanceof Error ? error.message : String(error)).split("\n")[0] ?? "";
}
