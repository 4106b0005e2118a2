/**
 * The Docker engine of the world: whatever answers on DOCKER_HOST (default
 * /var/run/docker.sock), else a `dockerd` from Debian's docker.io that we install and start
 * ourselves, detached, with its own log and pid file so `world:down` can stop it — and only it:
 * an engine we found running is never stopped.
 */
import os from "node:os";
import readline from "node:readline";
import Docker from "dockerode";
import { execa } from "execa";
import { ensureProgram } from "./apt.ts";
import type { Log } from "./log.ts";
import type { WorldConfig } from "./paths.ts";
import { livePid, removeFile, spawnDetached, stopProcess, tail, waitUntil } from "./processes.ts";

/** A client for the engine named by DOCKER_HOST (dockerode reads it), else the default socket. */
export function dockerClient(): Docker {
  return new Docker();
}

/** Whether the engine answers `/_ping` (a client of its own, so the timeout applies to the probe only). */
export async function engineAnswers(timeoutMs = 3_000): Promise<boolean> {
  try {
    await new Docker({ timeout: timeoutMs }).ping();
    return true;
  } catch {
    return false;
  }
}

/** `-H` for a dockerd we start: the unix socket DOCKER_HOST names, or the default one. */
function dockerdHost(): string {
  const host = process.env["DOCKER_HOST"];
  if (!host) return "unix:///var/run/docker.sock";
  if (host.startsWith("unix://")) return host;
  throw new Error(
    `DOCKER_HOST=${host} does not answer, and world:up only starts engines on a unix socket: ` +
      "start that engine, or unset DOCKER_HOST to let world:up start dockerd on /var/run/docker.sock",
  );
}

export interface Engine {
  docker: Docker;
  /** Whether this call started dockerd (false when an engine already answered). */
  started: boolean;
}

export async function ensureDocker(config: WorldConfig, log: Log): Promise<Engine> {
  const docker = dockerClient();
  if (await engineAnswers()) {
    const ours = await livePid(config.files.dockerdPid, "dockerd");
    log(ours ? `docker: reusing the dockerd the world started (pid ${ours})` : "docker: an engine answers, using it");
    return { docker, started: false };
  }
  const host = dockerdHost();
  const dockerd = await ensureProgram("dockerd", "docker.io", log);
  log(`docker: no engine answers, starting ${dockerd} -H ${host} (log ${config.files.dockerdLog})`);
  const child = await spawnDetached(dockerd, ["-H", host], {
    logFile: config.files.dockerdLog,
    pidFile: config.files.dockerdPid,
  });
  await waitUntil("dockerd did not come up", async () => ((await engineAnswers(1_000)) ? true : undefined), {
    timeoutMs: 90_000,
    intervalMs: 250,
    exited: child.exited,
    describe: () => tail(config.files.dockerdLog),
  });
  log(`docker: dockerd answers (pid ${child.pid})`);
  return { docker, started: true };
}

/** Stops the dockerd the world started (pid file), after removing the containers tests left. */
export async function stopDockerd(config: WorldConfig, log: Log): Promise<void> {
  const pid = await livePid(config.files.dockerdPid, "dockerd");
  if (pid === undefined) {
    log("docker: the dockerd the world started is not running");
  } else {
    log(`docker: stopping dockerd (pid ${pid})`);
    // dockerd stops its containers (10 s each by default) and its containerd before exiting.
    const how = await stopProcess(pid, 60_000);
    log(`docker: dockerd ${how}`);
  }
  await removeFile(config.files.dockerdPid);
}

/** The label the product puts on every container it creates. */
export const PRODUCT_LABEL = "dev.llama3-trt=1";

/**
 * Removes the product's containers (running or not) that tests may have left behind.
 * With `imagePrefix` (`<registry>/`), only those made from this world's images: another world,
 * or a developer, may be using the same engine, and their containers are not ours to remove.
 * Without it, all of them: used only when the engine itself is about to stop.
 */
export async function removeProductContainers(docker: Docker, log: Log, imagePrefix?: string): Promise<number> {
  const all = await docker.listContainers({ all: true, filters: { label: [PRODUCT_LABEL] } });
  const containers = imagePrefix === undefined ? all : all.filter((info) => info.Image.startsWith(imagePrefix));
  for (const info of containers) {
    log(`docker: removing leftover container ${info.Names[0] ?? info.Id} (${info.Image})`);
    await docker.getContainer(info.Id).remove({ force: true, v: true });
  }
  return containers.length;
}

/**
 * The address containers on the default bridge reach the host on: the bridge's gateway
 * (IPAM.Config[0].Gateway). Some engines leave Gateway out of IPAM and only show the subnet;
 * then it is the bridge interface's own IPv4 address (read with `ip`, because Node lists no
 * address for an interface without carrier, which docker0 is while no container runs), and
 * failing that the subnet's first address, which dockerd gives the bridge by default.
 */
export async function bridgeGateway(docker: Docker): Promise<string> {
  const bridge = (await docker.getNetwork("bridge").inspect()) as {
    IPAM?: { Config?: Array<{ Gateway?: string; Subnet?: string }> };
    Options?: Record<string, string>;
  };
  const gateway = bridge.IPAM?.Config?.find((entry) => entry.Gateway)?.Gateway;
  if (gateway) return gateway;
  const ifname = bridge.Options?.["com.docker.network.bridge.name"] ?? "docker0";
  const listed = os.networkInterfaces()[ifname]?.find((entry) => entry.family === "IPv4")?.address;
  if (listed) return listed;
  const ip = await execa("ip", ["-4", "-o", "addr", "show", "dev", ifname], { reject: false, stdin: "ignore" }).catch(() => undefined);
  const fromIp = /\binet (\d+\.\d+\.\d+\.\d+)\//.exec(ip?.stdout ?? "")?.[1];
  if (fromIp) return fromIp;
  const subnet = bridge.IPAM?.Config?.find((entry) => entry.Subnet?.includes("."))?.Subnet;
  const match = /^(\d+)\.(\d+)\.(\d+)\.(\d+)\/\d+$/.exec(subnet ?? "");
  if (match) return `${match[1]}.${match[2]}.${match[3]}.${Number(match[4]) + 1}`;
  throw new Error(
    `cannot tell the docker bridge gateway (no IPAM gateway, no IPv4 on ${ifname}): set WORLD_RECORDER_HOST to an address containers can reach`,
  );
}

export interface ProgressEvent {
  stream?: string;
  status?: string;
  id?: string;
  progress?: string;
  error?: string;
  errorDetail?: { message?: string };
  aux?: Record<string, unknown>;
}

/**
 * Reads the JSON-lines progress stream of a build, push, pull or import to its end. An event
 * with `error` fails the whole operation: the engine answers 200 and reports a failed RUN
 * step or a refused push only inside the stream, so ignoring it would pass a broken image.
 */
export async function consumeProgress(stream: NodeJS.ReadableStream, what: string, log?: Log): Promise<ProgressEvent[]> {
  const events: ProgressEvent[] = [];
  const transcript: string[] = [];
  const lines = readline.createInterface({ input: stream, crlfDelay: Infinity });
  for await (const line of lines) {
    if (!line.trim()) continue;
    let event: ProgressEvent;
    try {
      event = JSON.parse(line) as ProgressEvent;
    } catch {
      event = { stream: `${line}\n` };
    }
    events.push(event);
    const text = event.stream ?? (event.status ? `${event.id ? `${event.id}: ` : ""}${event.status}\n` : "");
    // Byte-level progress lines ("Pushing [==>  ]") say nothing useful in a log.
    if (text && !event.progress) {
      transcript.push(text);
      log?.detail?.(text);
    }
    if (event.error !== undefined || event.errorDetail !== undefined) {
      const message = event.errorDetail?.message ?? event.error ?? "unknown error";
      const context = transcript.join("").trimEnd().split("\n").slice(-20).join("\n");
      throw new Error(`${what} failed: ${message}${context ? `\n${context}` : ""}`);
    }
  }
  return events;
}
