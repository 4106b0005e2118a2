import { cp, mkdir, readFile, rename, rm, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { FailedError } from "../../common/errors.ts";
import { deploymentValues, fillConfig, TemplateError, tritonModels } from "../../triton/model-repo.ts";
import { inContainer } from "../container-paths.ts";
import { removeStaleStaging, stagingFor } from "../staging.ts";
import type { Step, StepContext } from "../step.ts";
import type { EngineOut } from "./engine.ts";
import type { RepoOut } from "./git-repo.ts";
import { filesExist } from "./outputs.ts";
import type { WeightsOut } from "./weights.ts";

export type ModelRepoOut = { readonly dir: string };

const templatesDir = "all_models/inflight_batcher_llm";

/**
 * The fill values, from the settings and the engine's own config: the paths are those inside
 * the Triton container (one mount table with `serve`), never host paths.
 */
function values(ctx: StepContext): Record<string, string> {
  const weights = ctx.upstream<WeightsOut>("weights");
  return deploymentValues({
    maxBatchSize: ctx.settings.maxBatchSize,
    decoupled: false,
    tokenizerDir: `${inContainer.weights}/${weights.modelPath}`,
    engineDir: inContainer.engine,
  });
}

export const modelRepoStep: Step<ModelRepoOut> = {
  id: "model-repo",
  title: "Assemble the Triton model repository",
  reads: ["backend-repo", "engine", "weights"],
  async inputs(ctx) {
    return { values: values(ctx) };
  },
  async expectedOut(ctx) {
    return { dir: ctx.paths.modelRepo };
  },
  async plan(ctx) {
    return { kind: "files", files: { dir: ctx.paths.modelRepo, paths: tritonModels.map((m) => `${m}/config.pbtxt`) } };
  },
  async run(ctx) {
    const backend = ctx.upstream<RepoOut>("backend-repo");
    const engine = ctx.upstream<EngineOut>("engine");
    if (ctx.settings.maxBatchSize > engine.maxBatchSize) {
      throw new FailedError(
        `Triton would accept batches of ${ctx.settings.maxBatchSize} but the engine was built for ${engine.maxBatchSize}: rebuild the engine (\`llama3-trt build --force engine\`).`,
      );
    }
    const final = ctx.paths.modelRepo;
    const staging = stagingFor(final);
    await removeStaleStaging(final);
    await mkdir(staging, { recursive: true });
    try {
      const fill = values(ctx);
      for (const model of tritonModels) {
        const source = join(backend.dir, templatesDir, model);
        await cp(source, join(staging, model), { recursive: true });
        const configPath = join(staging, model, "config.pbtxt");
        let filled: string;
        try {
          filled = fillConfig(model, await readFile(configPath, "utf8"), fill);
        } catch (error) {
          if (error instanceof TemplateError) throw new FailedError(error.message, { cause: error });
          throw error;
        }
        await writeFile(configPath, filled);
        ctx.log.line(`${model}/config.pbtxt filled`);
      }
      await rm(final, { recursive: true, force: true });
      await rename(staging, final);
    } finally {
      await rm(staging, { recursive: true, force: true });
    }
    return { dir: final };
  },
  async verify(_ctx, out) {
    return filesExist(out.dir, tritonModels.map((m) => `${m}/config.pbtxt`));
  },
};
