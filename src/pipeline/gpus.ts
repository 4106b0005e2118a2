import { FailedError } from "../common/errors.ts";
import type { StepContext } from "./step.ts";

/**
 * Before GPU work: can this engine give containers the GPUs asked for, and are there enough for
 * the tp size? A one-second `nvidia-smi -L` container answers both, and fails the way the real
 * run would (no NVIDIA runtime: "could not select device driver", reliability case 26) while
 * nothing expensive has started.
 */
export async function ensureGpus(ctx: StepContext, options: { onlyIfImagePresent?: boolean } = {}): Promise<void> {
  const { gpus, tp, buildImage } = ctx.settings;
  if (gpus === "none") return;
  if (options.onlyIfImagePresent && !(await ctx.clients.docker.inspectImage(buildImage))) return;
  const count = await ctx.memo("gpu-probe", async () => {
    const lines: string[] = [];
    const result = await ctx.clients.docker.runToCompletion(
      { image: buildImage, cmd: ["nvidia-smi", "-L"], workingDir: "/", mounts: [], gpus },
      { labels: ctx.labelsFor("gpu-probe"), onLine: (l) => lines.push(l), signal: ctx.signal, engine: await ctx.engine() },
    );
    if (result.exitCode !== 0) {
      throw new FailedError(`nvidia-smi failed in a container with --gpus ${String(gpus)} (exit ${result.exitCode}): ${lines.slice(-3).join(" ")}`);
    }
    return lines.filter((l) => /^GPU \d+:/.test(l)).length;
  });
  if (count < tp) {
    throw new FailedError(`--tp ${tp} needs ${tp} GPUs, but the containers see ${count}. Lower --tp or pass more GPUs with --gpus.`);
  }
}
