import { readdir, readFile, realpath, rm, stat } from "node:fs/promises";
import { basename, join } from "node:path";
import { FailedError } from "../../common/errors.ts";
import { formatBytes, formatDuration } from "../../common/format.ts";
import {
  blobPath,
  neededForConversion,
  refPath,
  repoFolder,
  refuseUnsafeListing,
  snapshotDir,
  validCommit,
} from "../../hub/cache.ts";
import { ensureRoom } from "../../hub/disk.ts";
import { contentMatches, downloadToCache, missingBytes } from "../../hub/download.ts";
import { HubClient, type RepoFile } from "../../hub/hub-client.ts";
import { readHubEnv } from "../../hub/hub-env.ts";
import type { Json, StepInputs } from "../fingerprint.ts";
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
  /** `oid` (the blob's hash) for files from the Hub; local folders have none. */
  readonly files: readonly { readonly path: string; readonly size: number; readonly oid?: string }[];
};

/** Files conversion and the tokenizer cannot do without. */
const required = ["config.json", "tokenizer.json", "tokenizer_config.json"];

interface Listing {
  readonly commit: string;
  readonly files: readonly RepoFile[];
}

/** Lists the model once per command: preflight, inputs, plan and run all need the same listing. */
function listing(ctx: StepContext): Promise<Listing> {
  return ctx.memo(`weights:${ctx.settings.model}@${ctx.settings.revision}`, () => list(ctx));
}

function client(ctx: StepContext): HubClient {
  return new HubClient(readHubEnv(ctx.env), ctx.signal, (message) => ctx.log.line(`warning: ${message}`));
}

async function list(ctx: StepContext): Promise<Listing> {
  const hub = readHubEnv(ctx.env);
  const { model, revision } = ctx.settings;
  if (hub.offline) return offlineListing(hub.cacheDir, model, revision);
  const hubClient = client(ctx);
  const commit = await hubClient.resolveCommit(model, revision);
  const all = await hubClient.listFiles(model, commit);
  // Names and ids from the server become paths here: all are checked before anything is written.
  refuseUnsafeListing(model, commit, all);
  const files = all.filter((f) => neededForConversion(f.path));
  const missing = required.filter((name) => !files.some((f) => f.path === name));
  if (missing.length > 0 || !files.some((f) => f.path.endsWith(".safetensors"))) {
    throw new FailedError(
      `${model}@${revision} lacks ${[...missing, ...(files.some((f) => f.path.endsWith(".safetensors")) ? [] : ["*.safetensors weights"])].join(", ")}: llama3-trt converts Hugging Face safetensors checkpoints.`,
    );
  }
  return { commit, files };
}

/**
 * HF_HUB_OFFLINE: the commit from `refs/`, the files from the snapshot, and not one request
 * (reliability case 14). What must be there comes from the shard index; anything missing is named.
 */
async function offlineListing(cacheDir: string, repo: string, revision: string): Promise<Listing> {
  let commit = revision;
  if (!validCommit(revision)) {
    try {
      commit = (await readFile(refPath(cacheDir, repo, revision), "utf8")).trim();
    } catch {
      throw new FailedError(
        `HF_HUB_OFFLINE is set and ${repo}@${revision} is not in the cache (${repoFolder(cacheDir, repo)}). Unset HF_HUB_OFFLINE to download it.`,
      );
    }
  }
  const dir = snapshotDir(cacheDir, repo, commit);
  const names = (await readdir(dir).catch(() => [] as string[])).filter(neededForConversion);
  const expected = new Set([...required, ...names]);
  try {
    const index = JSON.parse(await readFile(join(dir, "model.safetensors.index.json"), "utf8")) as { weight_map?: Record<string, string> };
    for (const shard of Object.values(index.weight_map ?? {})) expected.add(shard);
  } catch {
    // No index: a single-file checkpoint, or the index itself is missing (named below if so).
  }
  const files: RepoFile[] = [];
  const missing: string[] = [];
  for (const name of [...expected].sort()) {
    const blob = await realpath(join(dir, name)).catch(() => undefined);
    if (!blob) {
      missing.push(name);
      continue;
    }
    const oid = basename(blob);
    files.push({ path: name, size: (await stat(blob)).size, oid, lfs: oid.length === 64 });
  }
  if (missing.length > 0 || !files.some((f) => f.path.endsWith(".safetensors"))) {
    throw new FailedError(
      `HF_HUB_OFFLINE is set and the cached snapshot ${dir} is incomplete: missing ${missing.join(", ") || "*.safetensors"}. Unset HF_HUB_OFFLINE to download the rest.`,
    );
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
  describeChange(before, after) {
    if (before.commit === after.commit || typeof before.commit !== "string" || typeof after.commit !== "string") return undefined;
    const oids = (files: Json | undefined) => new Map(((files ?? []) as { path: string; oid: string }[]).map((f) => [f.path, f.oid]));
    const was = oids(before.files);
    const now = oids(after.files);
    const changed = [...now].filter(([path, oid]) => was.get(path) !== oid).length + [...was.keys()].filter((p) => !now.has(p)).length;
    return `revision ${String(after.revision)} moved ${before.commit.slice(0, 7)} → ${after.commit.slice(0, 7)} (${changed} file${changed === 1 ? "" : "s"} changed)`;
  },
  async expectedOut(ctx) {
    const { modelDir, model } = ctx.settings;
    if (modelDir !== null) return { mountDir: modelDir, modelPath: ".", commit: null, files: await localFiles(modelDir) };
    const { commit, files } = await listing(ctx);
    return {
      mountDir: repoFolder(readHubEnv(ctx.env).cacheDir, model),
      modelPath: `snapshots/${commit}`,
      commit,
      files: files.map((f) => ({ path: f.path, size: f.size, oid: f.oid })),
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
  async preflight(ctx) {
    // Before anything runs: the Hub answers, the token has access, and the download fits.
    if (ctx.settings.modelDir !== null) return;
    const hub = readHubEnv(ctx.env);
    const { files } = await listing(ctx);
    await ensureRoom(hub.cacheDir, await missingBytes({ repo: ctx.settings.model, files, cacheDir: hub.cacheDir }));
  },
  async run(ctx, work) {
    if (work.kind !== "weights") throw new Error("weights expects weights work");
    const out = await this.expectedOut(ctx);
    if (work.weights.source === "local") {
      const missing = required.filter((name) => !out.files.some((f) => f.path === name));
      if (missing.length > 0 || !out.files.some((f) => f.path.endsWith(".safetensors"))) {
        throw new FailedError(`--model-dir ${out.mountDir} lacks ${[...missing, "*.safetensors"].join(", ")}: it must hold a Hugging Face checkpoint.`);
      }
      return out;
    }
    const hub = readHubEnv(ctx.env);
    const { commit, files } = await listing(ctx);
    if (ctx.deepVerify) {
      // A blob of the right size with the wrong bytes would otherwise be kept as done.
      for (const file of files) {
        const blob = blobPath(hub.cacheDir, ctx.settings.model, file.oid);
        if ((await stat(blob).then((s) => s.size, () => -1)) !== file.size) continue;
        if (!(await contentMatches(blob, file.oid, file.size))) {
          ctx.log.line(`warning: ${file.path} in the cache does not match its hash: fetching it again`);
          await rm(blob, { force: true });
        }
      }
    }
    const total = await missingBytes({ repo: ctx.settings.model, files, cacheDir: hub.cacheDir });
    await ensureRoom(hub.cacheDir, total);
    ctx.log.note(`${ctx.settings.model}@${commit}: ${files.length} files, ${formatBytes(total)} to download into ${hub.cacheDir}`);
    const started = Date.now();
    let done = 0;
    let lastReport = 0;
    await downloadToCache(client(ctx), {
      repo: ctx.settings.model,
      revision: ctx.settings.revision,
      commit,
      files,
      cacheDir: hub.cacheDir,
      signal: ctx.signal,
      warn: (message) => ctx.log.line(`warning: ${message}`),
      onBytes: (n) => {
        done += n;
        const now = Date.now();
        if (now - lastReport < 1_000) return;
        lastReport = now;
        const rate = done / Math.max((now - started) / 1000, 0.001);
        ctx.log.line(
          `${formatBytes(done)} of ${formatBytes(total)} (${((100 * done) / Math.max(total, 1)).toFixed(0)}%), ${formatBytes(rate)}/s, ETA ${formatDuration((total - done) / rate)}`,
        );
      },
      onFileDone: (file, downloaded) => ctx.log.line(`${file.path}: ${downloaded ? `downloaded, ${formatBytes(file.size)}, verified` : "already in the cache"}`),
    });
    const seconds = (Date.now() - started) / 1000;
    ctx.log.note(`downloaded ${formatBytes(done)} in ${formatDuration(seconds)}${done > 0 ? ` (${formatBytes(done / Math.max(seconds, 0.001))}/s)` : ""}`);
    return out;
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
