import { readFile } from "node:fs/promises";
import { join } from "node:path";
import { FailedError, UsageError } from "../common/errors.ts";
import type { Settings } from "../config/schema.ts";
import { inContainer } from "../pipeline/container-paths.ts";
import { describeChanges, type Json, type StepInputs } from "../pipeline/fingerprint.ts";
import { StateStore } from "../pipeline/state.ts";
import type { StepId } from "../pipeline/step-ids.ts";
import type { ImageOut } from "../pipeline/steps/build-image.ts";
import { engineInputs, readEngineConfig, type EngineOut } from "../pipeline/steps/engine.ts";
import type { RepoOut } from "../pipeline/steps/git-repo.ts";
import { modelRepoValues, type ModelRepoOut } from "../pipeline/steps/model-repo.ts";
import type { WeightsOut } from "../pipeline/steps/weights/index.ts";
import type { Session } from "../pipeline/session.ts";
import { deploymentProblems, readTensorrtLlmConfig } from "../triton/model-repo.ts";

/** What `build` made that serving (or `ask --local`) uses, checked against the settings and each other. */
export interface Built {
  readonly engine: EngineOut;
  readonly weights: WeightsOut;
  /** Present when asked for (serve). */
  readonly modelRepo?: ModelRepoOut;
  /** Present when asked for (ask --local). */
  readonly buildImage?: ImageOut;
  readonly trtllmRepo?: RepoOut;
}

/**
 * Reads the records of the steps a command needs from state.json, without the network (unlike
 * `plan`, which asks the Hub whether the revision moved): serving must work offline. Refuses,
 * before anything starts, when a step is not built, when the settings now differ from those it
 * was built with, when its outputs changed on disk (each step's own `verify` says), or when the
 * model repository and the engine disagree (triton max_batch_size above the engine's, engine
 * path, streaming, GPUs for the tp).
 */
export async function readBuilt(session: Session, needs: readonly StepId[], command: string): Promise<Built> {
  const { paths, settings } = session;
  const state = await StateStore.load(paths);
  const missing = needs.filter((id) => !state.get(id));
  if (missing.length > 0) {
    throw new FailedError(`Nothing to ${command} yet in ${paths.root}: ${missing.join(", ")} not built. Run \`llama3-trt build\` first.`);
  }
  const out = <T>(id: StepId): T => state.get(id)?.out as T;
  const engine = out<EngineOut>("engine");
  const weights = out<WeightsOut>("weights");

  const drift: string[] = [];
  const engineChanges = describeChanges(ownInputs(state.get("engine")?.inputs), engineInputs(settings));
  if (engineChanges.length > 0) drift.push(`engine: ${engineChanges.join("; ")}`);
  if (needs.includes("model-repo")) {
    const recorded = (state.get("model-repo")?.inputs.values ?? {}) as StepInputs;
    const changes = describeChanges(recorded, modelRepoValues(settings, weights) as StepInputs);
    if (changes.length > 0) drift.push(`model-repo: ${changes.join("; ")}`);
  }
  if (drift.length > 0) {
    throw new UsageError(
      `The settings differ from what was built:\n- ${drift.join("\n- ")}\nRun \`llama3-trt build\` with these settings first, or drop the changed flags.`,
    );
  }

  const gone = (await (await session.pipeline()).verifyRecorded(needs)).flatMap(({ verdict }) => (verdict.ok ? [] : [verdict.reason]));
  if (gone.length > 0) throw new FailedError(`The build in ${paths.root} is incomplete:\n- ${gone.join("\n- ")}\nRun \`llama3-trt build\` to redo what is missing.`);
  const limits = await readEngineConfig(engine.dir);
  const modelRepo = needs.includes("model-repo") ? out<ModelRepoOut>("model-repo") : undefined;

  if (modelRepo) {
    const text = await readFile(join(modelRepo.dir, "tensorrt_llm", "config.pbtxt"), "utf8");
    const problems = deploymentProblems({
      engine: limits,
      tensorrtLlm: readTensorrtLlmConfig(text),
      engineDir: inContainer.engine,
      streaming: settings.streaming,
      gpus: settings.gpus,
    });
    if (problems.length > 0) throw new FailedError(`The model repository and the engine disagree:\n- ${problems.join("\n- ")}`);
  }
  return {
    engine: { ...engine, ...limits },
    weights,
    ...(modelRepo ? { modelRepo } : {}),
    ...(state.get("build-image") ? { buildImage: out<ImageOut>("build-image") } : {}),
    ...(state.get("trtllm-repo") ? { trtllmRepo: out<RepoOut>("trtllm-repo") } : {}),
  };
}

/** A record's own inputs, without the upstream fingerprints (those say nothing a user can act on here). */
function ownInputs(inputs: StepInputs | undefined): StepInputs {
  const own: Record<string, Json> = {};
  for (const [key, value] of Object.entries(inputs ?? {})) if (!key.startsWith("upstream.")) own[key] = value;
  return own;
}
