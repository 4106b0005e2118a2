import { access } from "node:fs/promises";
import { basename, join } from "node:path";
import { FailedError } from "../common/errors.ts";
import { buildFolder } from "./staging.ts";
import type { ContainerWork, StepContext } from "./step.ts";

/**
 * Runs a step's container into a staging folder and renames it into place only when the
 * container succeeded and every expected file is there: a killed or failed run leaves the
 * previous output (or nothing), never a half-written one (case 24).
 */
export async function runIntoFolder(ctx: StepContext, work: ContainerWork): Promise<void> {
  const { container: spec, output } = work;
  await buildFolder(output.dir, output.staging, async (staging) => {
    const engine = await ctx.engine();
    ctx.log.note(`running ${spec.cmd.join(" ")} in ${spec.image}`);
    const result = await ctx.clients.docker.runToCompletion(spec, {
      labels: ctx.containerLabels,
      onLine: (line) => ctx.log.line(line),
      signal: ctx.signal,
      engine,
    });
    if (result.oomKilled || result.exitCode === 137) {
      throw new FailedError(
        `${spec.cmd[0]} was killed by the kernel's OOM killer (exit ${result.exitCode}); ` +
          "lower --max-batch-size or --max-input-len, or free memory",
      );
    }
    if (result.exitCode !== 0) throw new FailedError(`${basename(spec.cmd[0] ?? "")} exited with code ${result.exitCode}`);
    const missing: string[] = [];
    for (const file of output.files) {
      await access(join(staging, file)).catch(() => missing.push(file));
    }
    if (missing.length > 0) throw new FailedError(`${spec.cmd[0]} succeeded but did not write ${missing.join(", ")}`);
  });
}
