import { randomBytes } from "node:crypto";
import { readdir, realpath, stat } from "node:fs/promises";
import { join } from "node:path";
import { FailedError } from "../../common/errors.ts";
import { formatBytes, formatDuration } from "../../common/format.ts";
import {
  neededForConversion,
  refPath,
  repoFolder,
  snapshotDir,
  unsafeRelativePath,
  validCommit,
  validOid,
} from "../../hub/cache.ts";
import { downloadToCache, missingBytes } from "../../hub/download.ts";
import { HubClient, type RepoFile } from "../../hub/hub-client.ts";
import { readHubEnv } from "../../hub/hub-env.ts";
import { readFile } from "node:fs/promises";
import type { StepInputs } from "../fingerprint.ts";
import type { Step, StepContext, StepWork } from "../step.ts";

/**
 * Where the weights are, in the shape the container steps mount them: the whole cache folder of
 * the model (its snapshot links point into `blobs/`, which must be reachable inside the
 * container too) and the model folder's path inside it.
 */
export type WeightsOut = {
  readonly mountDir: string;
  readonly modelPath: string;
  readonly commit: string | null;
  readonly files: readonly { readonly path: string; readonly size: number }[];
};

/** Files conversion needs that a `--model-dir` must hold. */
const requiredLocal = ["config.json", "tokenizer.json", "tokenizer_config.json"];

interface Listing {
  readonly commit: string;
  readonly files: readonly RepoFile[];
}

/** Lists the model once per command: inputs, plan and run all need the same listing. */
function listing(ctx: StepContext): Promise<Listing> {
  return ctx.memo(`weights:${ctx.settings.model}@${ctx.settings.revision}`, () => list(ctx));
}

async function list(ctx: StepContext): Promise<Listing> {
  const hub = readHubEnv(ctx.env);
  const { model, revision } = ctx.settings;
  if (hub.offline) return offlineListing(hub.cacheDir, model, revision);
  const client = new HubClient(hub, ctx.signal);
  const commit = await client.resolveCommit(model, revision);
  const all = await client.listFiles(model, commit);
  for (const file of all) {
    const unsafe = unsafeRelativePath(file.path);
    if (unsafe) {
      throw new FailedError(`Invalid filename ${JSON.stringify(file.path)} in ${model} (${unsafe}): refusing to download. Ask the repository owner to rename it.`);
    }
    if (!validOid(file.oid, file.lfs)) throw new FailedError(`Invalid oid from the Hub for ${file.path}: ${JSON.stringify(file.oid)}`);
  }
  const files = all.filter((f) => neededForConversion(f.path));
  if (!files.some((f) => f.path.endsWith(".safetensors"))) {
    throw new FailedError(`${model}@${revision} has no .safetensors weights: llama3-trt converts from safetensors only.`);
  }
  return { commit, files };
}

/** HF_HUB_OFFLINE: the commit from `refs/`, the files from the snapshot; no request at all. */
async function offlineListing(cacheDir: string, repo: string, revision: string): Promise<Listing> {
  let commit = revision;
  if (!validCommit(revision)) {
    try {
      commit = (await readFile(refPath(cacheDir, repo, revision), "utf8")).trim();
    } catch {
      throw new FailedError(`HF_HUB_OFFLINE is set and ${repo}@${revision} is not in the cache (${repoFolder(cacheDir, repo)}). Unset HF_HUB_OFFLINE to download it.`);
    }
  }
  const dir = snapshotDir(cacheDir, repo, commit);
  const names = await readdir(dir).catch(() => [] as string[]);
  const files: RepoFile[] = [];
  for (const name of names.filter(neededForConversion)) {
    const target = await realpath(join(dir, name)).catch(() => undefined);
    const size = target ? (await stat(target)).size : -1;
    const oid = target?.split("/").pop() ?? "";
    files.push({ path: name, size, oid, lfs: oid.length === 64 });
  }
  if (!files.some((f) => f.path.endsWith(".safetensors")) || files.some((f) => f.size < 0)) {
    throw new FailedError(`HF_HUB_OFFLINE is set and the cached snapshot ${dir} is incomplete. Unset HF_HUB_OFFLINE to download the rest.`);
  }
  return { commit, files };
}

export const weightsStep: Step<WeightsOut> = {
  id: "weights",
  title: "Get the model weights",
  reads: [],
  async inputs(ctx): Promise<StepInputs> {
    const { modelDir, model, revision } = ctx.settings;
    if (modelDir !== null) return { modelDir, files: await localFiles(modelDir) };
    const { commit, files } = await listing(ctx);
    // The resolved commit, not the branch: "stale" then means the remote really moved.
    return { repo: model, revision, commit, files: files.map((f) => ({ path: f.path, size: f.size, oid: f.oid })) };
  },
  async expectedOut(ctx) {
    const { modelDir, model } = ctx.settings;
    if (modelDir !== null) return { mountDir: modelDir, modelPath: ".", commit: null, files: await localFiles(modelDir) };
    const { commit, files } = await listing(ctx);
    const cacheDir = readHubEnv(ctx.env).cacheDir;
    return {
      mountDir: repoFolder(cacheDir, model),
      modelPath: `snapshots/${commit}`,
      commit,
      files: files.map((f) => ({ path: f.path, size: f.size })),
    };
  },
  async plan(ctx): Promise<StepWork> {
    const { modelDir, model, revision } = ctx.settings;
    if (modelDir !== null) {
      const files = await localFiles(modelDir);
      return { kind: "weights", weights: { repo: model, revision, commit: null, source: "local", dir: modelDir, files, bytesToDownload: 0 } };
    }
    const { commit, files } = await listing(ctx);
    const hub = readHubEnv(ctx.env);
    return {
      kind: "weights",
      weights: {
        repo: model,
        revision,
        commit,
        source: "hub",
        dir: snapshotDir(hub.cacheDir, model, commit),
        files: files.map((f) => ({ path: f.path, size: f.size })),
        bytesToDownload: await missingBytes({ repo: model, files, cacheDir: hub.cacheDir }),
      },
    };
  },
  async run(ctx, work) {
    if (work.kind !== "weights") throw new Error("weights expects weights work");
    const out = await this.expectedOut(ctx);
    if (work.weights.source === "local") {
      const missing = requiredLocal.filter((name) => !out.files.some((f) => f.path === name));
      if (missing.length > 0 || !out.files.some((f) => f.path.endsWith(".safetensors"))) {
        throw new FailedError(`--model-dir ${out.mountDir} lacks ${[...missing, "*.safetensors"].join(", ")}: it must hold a Hugging Face checkpoint.`);
      }
      return out;
    }
    const hub = readHubEnv(ctx.env);
    const { commit, files } = await listing(ctx);
    const total = work.weights.bytesToDownload;
    ctx.log.note(`${ctx.settings.model}@${commit}: ${files.length} files, ${formatBytes(total)} to download into ${hub.cacheDir}`);
    const started = Date.now();
    let done = 0;
    let lastReport = 0;
    await downloadToCache(new HubClient(hub, ctx.signal), {
      repo: ctx.settings.model,
      revision: ctx.settings.revision,
      commit,
      files,
      cacheDir: hub.cacheDir,
      runId: `${ctx.runId}-${randomBytes(3).toString("hex")}`,
      onBytes: (n) => {
        done += n;
        const now = Date.now();
        if (now - lastReport < 2_000) return;
        lastReport = now;
        const rate = done / Math.max((now - started) / 1000, 0.001);
        ctx.log.line(`${formatBytes(done)} of ${formatBytes(total)}, ${formatBytes(rate)}/s, ETA ${formatDuration((total - done) / rate)}`);
      },
      onFileDone: (file, downloaded) => ctx.log.line(`${file.path}: ${downloaded ? `downloaded ${formatBytes(file.size)}` : "already in the cache"}`),
    });
    ctx.log.note(`downloaded ${formatBytes(done)} in ${formatDuration((Date.now() - started) / 1000)}`);
    return out;
  },
  async verify(_ctx, out) {
    const dir = join(out.mountDir, out.modelPath);
    for (const file of out.files) {
      // Size on every run (case 7a): cheap, and catches a truncated blob; hashes are checked on download.
      const size = await stat(join(dir, file.path)).then((s) => s.size, () => undefined);
      if (size === undefined) return { ok: false, reason: `${file.path} is missing from ${dir}` };
      if (size !== file.size) return { ok: false, reason: `${file.path} has ${size} bytes, expected ${file.size}` };
    }
    return { ok: true };
  },
};

async function localFiles(dir: string): Promise<{ path: string; size: number }[]> {
  const names = await readdir(dir).catch(() => {
    throw new FailedError(`--model-dir ${dir} cannot be read: does it exist?`);
  });
  const files: { path: string; size: number }[] = [];
  for (const name of names.filter(neededForConversion).sort()) {
    files.push({ path: name, size: (await stat(join(dir, name))).size });
  }
  return files;
}
