import { FailedError } from "../common/errors.ts";
import { chosenGpus, nvidiaSmiQuery, parseGpuQuery, type Gpu } from "../doctor/nvidia-smi.ts";
import { factsFromNvidiaSmi, gpuProfiles, type GpuFacts } from "../model/gpu-profiles.ts";
import type { StepContext } from "./step.ts";

type ProbeContext = Pick<StepContext, "settings" | "clients" | "memo" | "signal" | "engine" | "labelsFor">;

/**
 * The GPUs the containers get, as nvidia-smi reports them inside one: a one-second container of
 * the build image, once per command. It fails the way the real run would (no NVIDIA runtime:
 * "could not select device driver", reliability case 26) while nothing expensive has started.
 */
function probeGpus(ctx: ProbeContext): Promise<Gpu[]> {
  const { gpus, buildImage } = ctx.settings;
  return ctx.memo("gpu-probe", async () => {
    const lines: string[] = [];
    const result = await ctx.clients.docker.runToCompletion(
      { image: buildImage, cmd: ["nvidia-smi", ...nvidiaSmiQuery], workingDir: "/", mounts: [], gpus },
      { labels: ctx.labelsFor("gpu-probe"), onLine: (l) => lines.push(l), signal: ctx.signal, engine: await ctx.engine() },
    );
    if (result.exitCode !== 0) {
      throw new FailedError(`nvidia-smi failed in a container with --gpus ${String(gpus)} (exit ${result.exitCode}): ${lines.slice(-3).join(" ")}`);
    }
    try {
      return parseGpuQuery(lines.join("\n"));
    } catch (error) {
      throw new FailedError(`nvidia-smi in a container with --gpus ${String(gpus)} printed what llama3-trt cannot read: ${(error as Error).message}`);
    }
  });
}

/**
 * Before GPU work: can this engine give containers the GPUs asked for, and are there enough for
 * the tp size?
 */
export async function ensureGpus(ctx: ProbeContext, options: { onlyIfImagePresent?: boolean } = {}): Promise<void> {
  const { gpus, tp, buildImage } = ctx.settings;
  if (gpus === "none") return;
  if (options.onlyIfImagePresent && !(await ctx.clients.docker.inspectImage(buildImage))) return;
  const count = (await probeGpus(ctx)).length;
  if (count < tp) {
    throw new FailedError(`--tp ${tp} needs ${tp} GPUs, but the containers see ${count}. Lower --tp or pass more GPUs with --gpus.`);
  }
}

/** The GPUs a memory plan is made for, and where their facts come from. */
export type GpuSituation =
  | { readonly source: "profile"; readonly profile: string; readonly gpus: readonly GpuFacts[]; readonly available: number }
  | { readonly source: "nvidia-smi"; readonly gpus: readonly GpuFacts[]; readonly available: number }
  | { readonly source: "unknown"; readonly reason: string };

/** The host's own nvidia-smi (doctor, and build before the build image exists). */
export type HostGpus = () => Promise<Gpu[]>;

/**
 * `--gpu <profile>` when given (tp GPUs of that kind, up to 8 for the options); else the GPUs
 * nvidia-smi reports through the probe container (`probe`: build), or the host's nvidia-smi
 * (plan, doctor, and build before the build image exists); else unknown, and the plan says how
 * to give it GPUs to plan for.
 */
export async function gpuSituation(ctx: ProbeContext, how: { probe: boolean; hostGpus?: HostGpus | undefined }): Promise<GpuSituation> {
  const { gpu, gpus, tp, buildImage } = ctx.settings;
  if (gpu !== null) {
    const profile = gpuProfiles[gpu];
    return { source: "profile", profile: gpu, gpus: Array.from({ length: tp }, () => profile), available: 8 };
  }
  if (gpus === "none") return { source: "unknown", reason: "--gpus none: no GPU to plan for (pass --gpu <profile>, e.g. --gpu h100-80gb, to plan for one)" };
  let found: Gpu[];
  try {
    // `plan` starts no container: it asks the host's nvidia-smi, if any.
    if (how.probe && (await ctx.clients.docker.inspectImage(buildImage).catch(() => undefined))) found = await probeGpus(ctx);
    else if (how.hostGpus) found = chosenGpus(await how.hostGpus(), gpus);
    else return { source: "unknown", reason: "no build image yet to ask nvidia-smi in (pass --gpu <profile> to plan now)" };
  } catch (error) {
    return { source: "unknown", reason: `nvidia-smi could not be asked: ${(error as Error).message.split("\n")[0]} (pass --gpu <profile> to plan anyway)` };
  }
  if (found.length === 0) return { source: "unknown", reason: "nvidia-smi lists no GPU (pass --gpu <profile> to plan anyway)" };
  return { source: "nvidia-smi", gpus: found.slice(0, tp).map(factsFromNvidiaSmi), available: found.length };
}
