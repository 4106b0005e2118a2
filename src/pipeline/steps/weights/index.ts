import { stat } from "node:fs/promises";
import { join } from "node:path";
import { contentMatches } from "../../../hub/download.ts";
import type { Json, StepInputs } from "../../fingerprint.ts";
import type { Step, StepContext, WeightsWork } from "../../step.ts";
import { ensureModelFits } from "../../model-check.ts";
import { cacheSource } from "./cache-source.ts";
import { hubSource } from "./hub-source.ts";
import { localSource } from "./local-source.ts";
import type { ModelFiles, WeightsSource } from "./source.ts";

/**
 * Where the weights are, in the shape the container steps mount them: the whole cache folder of
 * the model (its snapshot links point into `blobs/`, which must be reachable inside the
 * container too) and the model folder's path inside it.
 */
export type WeightsOut = {
  readonly mountDir: string;
  readonly modelPath: string;
  readonly commit: string | null;
  /** `oid` (the blob's hash) for files from the Hub; local folders have none. */
  readonly files: readonly { readonly path: string; readonly size: number; readonly oid?: string }[];
};

/** --model-dir, else HF_HUB_OFFLINE's cache, else the Hub. */
export function weightsSource(ctx: Pick<StepContext, "settings" | "clients">): WeightsSource {
  const { modelDir, model, revision } = ctx.settings;
  if (modelDir !== null) return localSource(modelDir);
  const hub = ctx.clients.hub;
  return hub.hub.offline ? cacheSource(hub.hub.cacheDir, model, revision) : hubSource(hub, model, revision);
}

/** The model's files, listed once per command: inputs, plan, preflight and run all need them. */
export function listedModel(ctx: Pick<StepContext, "settings" | "clients" | "memo" | "recorded">): Promise<ModelFiles> {
  const { modelDir, model, revision } = ctx.settings;
  return ctx.memo(`weights:${modelDir ?? `${model}@${revision}`}`, async () => weightsSource(ctx).list(await ctx.recorded<WeightsOut>("weights")));
}
const listed = listedModel;
const source = weightsSource;

function outOf(model: ModelFiles): WeightsOut {
  return { mountDir: model.mountDir, modelPath: model.modelPath, commit: model.commit, files: model.files };
}

export const weightsStep: Step<WeightsOut, WeightsWork> = {
  id: "weights",
  title: "Get the model weights",
  reads: [],
  async inputs(ctx): Promise<StepInputs> {
    const { modelDir, model, revision } = ctx.settings;
    const { commit, files } = await listed(ctx);
    if (modelDir !== null) return { modelDir, files: files.map((f) => ({ path: f.path, size: f.size })) };
    // The resolved commit, not the branch: "stale" then means the remote really moved.
    return { repo: model, revision, commit, files: files.map((f) => ({ path: f.path, size: f.size, oid: f.oid ?? null })) };
  },
  describeChange(before, after) {
    if (before.commit === after.commit || typeof before.commit !== "string" || typeof after.commit !== "string") return undefined;
    const oids = (files: Json | undefined) => new Map(((files ?? []) as { path: string; oid: string }[]).map((f) => [f.path, f.oid]));
    const was = oids(before.files);
    const now = oids(after.files);
    const changed = [...now].filter(([path, oid]) => was.get(path) !== oid).length + [...was.keys()].filter((p) => !now.has(p)).length;
    return `revision ${String(after.revision)} moved ${before.commit.slice(0, 7)} → ${after.commit.slice(0, 7)} (${changed} file${changed === 1 ? "" : "s"} changed)`;
  },
  async expectedOut(ctx) {
    return outOf(await listed(ctx));
  },
  async plan(ctx) {
    const model = await listed(ctx);
    return {
      kind: "weights",
      weights: {
        repo: ctx.settings.model,
        revision: ctx.settings.revision,
        commit: model.commit,
        source: source(ctx).kind,
        dir: join(model.mountDir, model.modelPath),
        mountDir: model.mountDir,
        modelPath: model.modelPath,
        files: model.files,
        bytesToDownload: await source(ctx).bytesToDownload(model),
      },
    };
  },
  async preflight(ctx) {
    // The model's small files first: a model v0.8.0 cannot build, or limits it cannot hold, are
    // refused (exit 2) before a byte of the weights is fetched.
    await ensureModelFits(ctx);
    await source(ctx).preflight(await listed(ctx));
  },
  async run(ctx, work) {
    // Exactly the files the plan named, from the source it named.
    const { commit, mountDir, modelPath, files } = work.weights;
    const model: ModelFiles = { commit, mountDir, modelPath, files };
    await source(ctx).fetch(model, ctx);
    return outOf(model);
  },
  async verify(ctx, out) {
    const dir = join(out.mountDir, out.modelPath);
    for (const file of out.files) {
      // Size on every run (case 7a): cheap, and catches a truncated blob; hashes are checked on
      // download, and again with `build --verify`, which reads every byte (case 7b).
      const size = await stat(join(dir, file.path)).then((s) => s.size, () => undefined);
      if (size === undefined) return { ok: false, reason: `${file.path} is missing from ${dir}` };
      if (size !== file.size) return { ok: false, reason: `${file.path} has ${size} bytes, expected ${file.size}` };
      if (ctx.deepVerify && file.oid && !(await contentMatches(join(dir, file.path), file.oid, file.size))) {
        return { ok: false, reason: `${file.path} does not match its hash ${file.oid.slice(0, 12)} (changed on disk)` };
      }
    }
    return { ok: true };
  },
};
