/**
 * Docker helpers for integration tests, on the world's real engine (never a mock):
 * find the containers a run of the product left, prove none are left, run a throwaway
 * container, move images between the engine and the local registry.
 */
import { PassThrough } from "node:stream";
import Docker from "dockerode";
import { consumeProgress } from "../../world/docker.ts";

let client: Docker | undefined;

/** The engine the world uses (DOCKER_HOST, else the default socket). */
export function docker(): Docker {
  client ??= new Docker();
  return client;
}

export interface ContainerSummary {
  id: string;
  name: string;
  image: string;
  state: string;
  labels: Record<string, string>;
}

/**
 * Containers (running or not) carrying `label`, or `label=value` when `value` is given:
 * `containersWithLabel("dev.llama3-trt.run", runId)`.
 */
export async function containersWithLabel(label: string, value?: string): Promise<ContainerSummary[]> {
  const filter = value === undefined ? label : `${label}=${value}`;
  const list = await docker().listContainers({ all: true, filters: { label: [filter] } });
  return list.map((info) => ({
    id: info.Id,
    name: (info.Names[0] ?? info.Id).replace(/^\//, ""),
    image: info.Image,
    state: info.State,
    labels: info.Labels,
  }));
}

/** Throws, naming them, when containers with that label are left (e.g. after a run was stopped). */
export async function assertNoContainersLeft(label: string, value?: string): Promise<void> {
  const left = await containersWithLabel(label, value);
  if (left.length > 0) {
    const names = left.map((c) => `${c.name} (${c.image}, ${c.state})`).join(", ");
    throw new Error(`${left.length} container(s) labelled ${value === undefined ? label : `${label}=${value}`} left behind: ${names}`);
  }
}

/** Removes containers with that label (cleanup for a test that failed halfway). */
export async function removeContainersWithLabel(label: string, value?: string): Promise<number> {
  const list = await containersWithLabel(label, value);
  for (const container of list) await docker().getContainer(container.id).remove({ force: true, v: true });
  return list.length;
}

export interface RunResult {
  exitCode: number;
  stdout: string;
  stderr: string;
}

/** The label on containers made by `runContainer`, so a crashed test's leftovers can be found. */
export const TEST_CONTAINER_LABEL = "dev.llama3-trt.test";

/**
 * `docker run --rm image cmd…` on the world's engine: waits for the exit, returns the output,
 * always removes the container. No image is pulled: use `pullImage` first if needed.
 */
export async function runContainer(
  image: string,
  cmd: readonly string[],
  options: { env?: Record<string, string>; timeoutMs?: number; labels?: Record<string, string> } = {},
): Promise<RunResult> {
  const container = await docker().createContainer({
    Image: image,
    Cmd: [...cmd],
    Env: Object.entries(options.env ?? {}).map(([name, value]) => `${name}=${value}`),
    Labels: { [TEST_CONTAINER_LABEL]: "1", ...options.labels },
    HostConfig: { AutoRemove: false },
  });
  try {
    const stream = await container.attach({ stream: true, stdout: true, stderr: true });
    const stdout = new PassThrough();
    const stderr = new PassThrough();
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    stdout.on("data", (chunk: Buffer) => out.push(chunk));
    stderr.on("data", (chunk: Buffer) => err.push(chunk));
    docker().modem.demuxStream(stream, stdout, stderr);
    const ended = new Promise<void>((resolve) => stream.once("end", () => resolve()));
    await container.start();
    const timeoutMs = options.timeoutMs ?? 60_000;
    const timer = setTimeout(() => void container.kill().catch(() => {}), timeoutMs);
    const { StatusCode } = (await container.wait()) as { StatusCode: number };
    clearTimeout(timer);
    // The attach stream may deliver its last bytes just after the exit.
    await Promise.race([ended, new Promise((resolve) => setTimeout(resolve, 2_000))]);
    return { exitCode: StatusCode, stdout: Buffer.concat(out).toString("utf8"), stderr: Buffer.concat(err).toString("utf8") };
  } finally {
    await container.remove({ force: true, v: true }).catch(() => {});
  }
}

/** The local image id of `ref`, or undefined when the engine does not have it. */
export async function imageId(ref: string): Promise<string | undefined> {
  try {
    return (await docker().getImage(ref).inspect()).Id;
  } catch (error) {
    if ((error as { statusCode?: number }).statusCode === 404) return undefined;
    throw error;
  }
}

/** `docker pull ref`; errors reported inside the progress stream fail it. */
export async function pullImage(ref: string): Promise<void> {
  const stream = (await docker().pull(ref)) as NodeJS.ReadableStream;
  await consumeProgress(stream, `docker pull ${ref}`);
}

/**
 * `docker rmi ref`: removes the tag, and the image when it was its last tag and is unused.
 * `force`: remove the tag even while containers use the image (the image then stays, untagged).
 */
export async function removeImageTag(ref: string, options: { force?: boolean } = {}): Promise<void> {
  await docker().getImage(ref).remove({ force: options.force ?? false });
}

export interface ContainerEvent {
  id: string;
  /** `create`, `start`, `kill`, `die`, `destroy`, … */
  action: string;
  labels: Record<string, string>;
  timeNano: number;
}

/**
 * The engine's container events from `sinceSeconds` until now, oldest first, of containers with
 * all of `labels`: what happened to them, in the order the engine saw it.
 */
export async function containerEvents(sinceSeconds: number, labels: Record<string, string>): Promise<ContainerEvent[]> {
  const until = Math.ceil(Date.now() / 1000) + 1;
  const filters = { type: ["container"], label: Object.entries(labels).map(([k, v]) => `${k}=${v}`) };
  const stream = (await docker().getEvents({ since: sinceSeconds, until, filters } as Record<string, unknown>)) as NodeJS.ReadableStream;
  let text = "";
  for await (const chunk of stream) text += chunk.toString();
  return text
    .split("\n")
    .filter((line) => line.trim() !== "")
    .map((line) => JSON.parse(line) as { id: string; Action: string; Actor: { Attributes: Record<string, string> }; timeNano: number })
    .map((e) => ({ id: e.id, action: e.Action, labels: e.Actor.Attributes, timeNano: e.timeNano }))
    .sort((a, b) => a.timeNano - b.timeNano);
}
