/**
 * Runs the containers of an exported Pod spec on the world's Docker engine, as a kubelet would
 * run them: the image, `command` as the entrypoint and `args` as its arguments, the working
 * folder, the environment (a secretKeyRef resolved from the given Secrets), and every
 * volumeMount, with a host folder standing in for the PersistentVolumeClaim (a subPath is a
 * folder of it, made when missing, as the kubelet does) and a memory-backed emptyDir for /dev/shm.
 *
 * What Kubernetes itself adds (scheduling, GPU limits, probes) is not run here: the tests check
 * those fields against the schema and the Triton stand-in instead.
 */
import { mkdirSync } from "node:fs";
import { join } from "node:path";
import { PassThrough } from "node:stream";
import { docker, TEST_CONTAINER_LABEL } from "./docker.ts";

export interface PodContainer {
  name: string;
  image: string;
  command?: string[];
  args?: string[];
  workingDir?: string;
  env?: { name: string; value?: string; valueFrom?: { secretKeyRef?: { name: string; key: string } } }[];
  volumeMounts?: { name: string; mountPath: string; subPath?: string; readOnly?: boolean }[];
  ports?: { name?: string; containerPort: number }[];
}

export interface PodVolume {
  name: string;
  persistentVolumeClaim?: { claimName: string; readOnly?: boolean };
  emptyDir?: { medium?: string; sizeLimit?: string };
}

export interface PodRunOptions {
  /** The host folder that stands in for each claim, by claim name. */
  readonly claims: Readonly<Record<string, string>>;
  readonly volumes: readonly PodVolume[];
  /** Secret name → key → value. */
  readonly secrets: Readonly<Record<string, Readonly<Record<string, string>>>>;
  /**
   * Binds the test adds that are not in the manifest (what the world's stand-in image lacks, or
   * the world's stand-in of the network), as `host:container[:ro]`.
   */
  readonly extraBinds?: readonly string[];
  /**
   * The pod's network: `host` reaches the world's Hub on 127.0.0.1, as a cluster pod reaches the
   * Hub; `container:<id>` joins another container's network namespace, as the containers of one
   * pod share theirs (its loopback, and the ports that container publishes).
   */
  readonly network?: "host" | "bridge" | `container:${string}`;
  /** containerPort → host port on 127.0.0.1 (bridge only: the pod's every port, on the container that owns its network). */
  readonly publish?: Readonly<Record<number, number>>;
}

function binds(container: PodContainer, options: PodRunOptions): { binds: string[]; shmBytes: number | undefined } {
  const out: string[] = [];
  let shmBytes: number | undefined;
  for (const mount of container.volumeMounts ?? []) {
    const volume = options.volumes.find((v) => v.name === mount.name);
    if (!volume) throw new Error(`${container.name} mounts volume ${mount.name}, which the pod does not have`);
    if (volume.persistentVolumeClaim) {
      const root = options.claims[volume.persistentVolumeClaim.claimName];
      if (!root) throw new Error(`no host folder stands in for claim ${volume.persistentVolumeClaim.claimName}`);
      const source = mount.subPath ? join(root, mount.subPath) : root;
      mkdirSync(source, { recursive: true });
      const readOnly = mount.readOnly === true || volume.persistentVolumeClaim.readOnly === true;
      out.push(`${source}:${mount.mountPath}${readOnly ? ":ro" : ""}`);
    } else if (volume.emptyDir?.medium === "Memory" && mount.mountPath === "/dev/shm") {
      shmBytes = parseQuantity(volume.emptyDir.sizeLimit ?? "64Mi");
    } else {
      throw new Error(`${container.name}: volume ${mount.name} is of a kind this runner does not stand in for`);
    }
  }
  return { binds: [...out, ...(options.extraBinds ?? [])], shmBytes };
}

function parseQuantity(text: string): number {
  const match = /^(\d+)(Ki|Mi|Gi)?$/.exec(text);
  if (!match) throw new Error(`quantity ${text} is not understood here`);
  const unit = { Ki: 1024, Mi: 1024 ** 2, Gi: 1024 ** 3 }[match[2] as "Ki" | "Mi" | "Gi"] ?? 1;
  return Number(match[1]) * unit;
}

function environment(container: PodContainer, options: PodRunOptions): string[] {
  return (container.env ?? []).map((e) => {
    const ref = e.valueFrom?.secretKeyRef;
    if (ref) {
      const value = options.secrets[ref.name]?.[ref.key];
      if (value === undefined) throw new Error(`${container.name}: secret ${ref.name} has no key ${ref.key} (CreateContainerConfigError)`);
      return `${e.name}=${value}`;
    }
    return `${e.name}=${e.value ?? ""}`;
  });
}

/** Creates (does not start) the container of `spec`; removed by the caller. */
export async function createPodContainer(spec: PodContainer, options: PodRunOptions) {
  const { binds: hostBinds, shmBytes } = binds(spec, options);
  const publish = options.publish ?? {};
  if (Object.keys(publish).length > 0 && options.network?.startsWith("container:")) throw new Error(`${spec.name}: publish the pod's ports on the container whose network it joins`);
  return docker().createContainer({
    Image: spec.image,
    // Kubernetes: `command` replaces the image's ENTRYPOINT, `args` its CMD.
    ...(spec.command ? { Entrypoint: spec.command } : {}),
    ...(spec.args ? { Cmd: spec.args } : {}),
    ...(spec.workingDir ? { WorkingDir: spec.workingDir } : {}),
    Env: environment(spec, options),
    Labels: { [TEST_CONTAINER_LABEL]: "1", "dev.llama3-trt.test.pod-container": spec.name },
    ExposedPorts: Object.fromEntries(Object.keys(publish).map((p) => [`${p}/tcp`, {}])),
    HostConfig: {
      Binds: hostBinds,
      NetworkMode: options.network ?? "bridge",
      ...(shmBytes ? { ShmSize: shmBytes } : {}),
      PortBindings: Object.fromEntries(Object.entries(publish).map(([c, h]) => [`${c}/tcp`, [{ HostIp: "127.0.0.1", HostPort: String(h) }]])),
      Init: true,
    },
  });
}

/** Runs one container to its end (an init container, a Job's step): its exit code and output. */
export async function runPodContainer(spec: PodContainer, options: PodRunOptions, timeoutMs = 180_000): Promise<{ exitCode: number; output: string }> {
  const container = await createPodContainer(spec, options);
  try {
    const stream = await container.attach({ stream: true, stdout: true, stderr: true });
    const sink = new PassThrough();
    const chunks: Buffer[] = [];
    sink.on("data", (c: Buffer) => chunks.push(c));
    docker().modem.demuxStream(stream, sink, sink);
    const ended = new Promise<void>((resolve) => stream.once("end", () => resolve()));
    await container.start();
    const timer = setTimeout(() => void container.kill().catch(() => {}), timeoutMs);
    const { StatusCode } = (await container.wait()) as { StatusCode: number };
    clearTimeout(timer);
    await Promise.race([ended, new Promise((resolve) => setTimeout(resolve, 2_000))]);
    return { exitCode: StatusCode, output: Buffer.concat(chunks).toString("utf8") };
  } finally {
    await container.remove({ force: true, v: true }).catch(() => {});
  }
}
