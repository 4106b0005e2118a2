import { readFile, rm, stat } from "node:fs/promises";
import { join } from "node:path";
import { FailedError } from "../../../common/errors.ts";
import { formatBytes, formatDuration } from "../../../common/format.ts";
import { blobPath, neededForConversion, refuseUnsafeListing, repoFolder } from "../../../hub/cache.ts";
import { ensureRoom } from "../../../hub/disk.ts";
import { contentMatches, downloadToCache, missingBytes } from "../../../hub/download.ts";
import type { Hub, RepoFile } from "../../../hub/hub-client.ts";
import type { StepContext } from "../../step.ts";
import { missingForConversion, readListed, smallFileMaxBytes, type ModelFiles, type WeightsSource } from "./source.ts";

/** The Hub: the files are downloaded into the Hugging Face cache, in its standard layout. */
export function hubSource(hub: Hub, repo: string, revision: string): WeightsSource {
  const cacheDir = hub.hub.cacheDir;
  const repoFiles = (model: ModelFiles): RepoFile[] =>
    model.files.map((f) => ({ path: f.path, size: f.size, oid: f.oid as string, lfs: (f.oid ?? "").length === 64 }));
  return {
    kind: "hub",
    async list(recorded): Promise<ModelFiles> {
      const commit = await hub.resolveCommit(repo, revision);
      const mountDir = repoFolder(cacheDir, repo);
      // A commit's tree never changes: the files recorded for this very commit are its listing
      // (one request fewer for every no-op build, plan and status; the real Hub's recursive
      // tree of a model takes a few hundred milliseconds). Checked as a listing is.
      // (A record that lacks a file this version needs, made by an older one, is not taken.)
      if (recorded?.commit === commit && recorded.mountDir === mountDir && recorded.files.every((f) => typeof f.oid === "string")) {
        refuseUnsafeListing(repo, commit, repoFiles(recorded));
        const files = recorded.files.filter((f) => neededForConversion(f.path));
        if ((await missingForConversion(files)).length === 0) return { commit, mountDir, modelPath: `snapshots/${commit}`, files };
      }
      const all = await hub.listFiles(repo, commit);
      // Names and ids from the server become paths here: all are checked before anything is written.
      refuseUnsafeListing(repo, commit, all);
      const files = all.filter((f) => neededForConversion(f.path)).map((f) => ({ path: f.path, size: f.size, oid: f.oid }));
      const missing = await missingForConversion(files);
      if (missing.length > 0) throw new FailedError(`${repo}@${revision} lacks ${missing.join(", ")}: llama3-trt converts Hugging Face safetensors checkpoints.`);
      return { commit, mountDir, modelPath: `snapshots/${commit}`, files };
    },
    bytesToDownload: (model) => missingBytes({ repo, files: repoFiles(model), cacheDir }),
    // Before anything runs: the download fits (the Hub has answered and the token has access by now).
    preflight: async (model) => ensureRoom(cacheDir, await missingBytes({ repo, files: repoFiles(model), cacheDir })),
    async fetch(model, ctx) {
      const files = repoFiles(model);
      if (ctx.deepVerify) {
        // A blob of the right size with the wrong bytes would otherwise be kept as done.
        for (const file of files) {
          const blob = blobPath(cacheDir, repo, file.oid);
          if ((await stat(blob).then((s) => s.size, () => -1)) !== file.size) continue;
          if (!(await contentMatches(blob, file.oid, file.size))) {
            ctx.log.line(`warning: ${file.path} in the cache does not match its hash: fetching it again`);
            await rm(blob, { force: true });
          }
        }
      }
      const total = await missingBytes({ repo, files, cacheDir });
      await ensureRoom(cacheDir, total);
      ctx.log.note(`${repo}@${model.commit}: ${files.length} files, ${formatBytes(total)} to download into ${cacheDir}`);
      await download(hub, ctx, { repo, revision, commit: model.commit as string, files, cacheDir, total });
    },
    async readText(model, name) {
      const file = model.files.find((f) => f.path === name);
      if (!file) return undefined;
      // Already in the cache (a finished or half-done download): no request at all.
      const cached = await readListed(model, join(model.mountDir, model.modelPath), name);
      if (cached !== undefined && Buffer.byteLength(cached) === file.size) return cached;
      // The same content under an earlier commit (blobs are named by their hash, and only a
      // verified download is given that name): main moved, this file did not.
      const blob = file.oid ? await readFile(blobPath(cacheDir, repo, file.oid), "utf8").catch(() => undefined) : undefined;
      if (blob !== undefined && Buffer.byteLength(blob) === file.size) return blob;
      // Read into memory, not the cache: judging the model must not write anything.
      const url = `${hub.hub.endpoint}/${repo}/resolve/${model.commit as string}/${encodeURIComponent(name)}`;
      const answer = await hub.request(url, { repo, revision, path: name });
      const text = await answer.text();
      if (Buffer.byteLength(text) > smallFileMaxBytes) throw new FailedError(`${name} of ${repo} is too big for a configuration file`);
      return text;
    },
  };
}

/** The download, with a progress line a second: bytes, rate, ETA. */
async function download(
  hub: Hub,
  ctx: StepContext,
  what: { repo: string; revision: string; commit: string; files: RepoFile[]; cacheDir: string; total: number },
): Promise<void> {
  const started = Date.now();
  let done = 0;
  let lastReport = 0;
  const warn = (message: string) => ctx.log.line(`warning: ${message}`);
  await downloadToCache(hub.withWarnings(warn), {
    repo: what.repo,
    revision: what.revision,
    commit: what.commit,
    files: what.files,
    cacheDir: what.cacheDir,
    signal: ctx.signal,
    warn,
    onBytes: (n) => {
      done += n;
      const now = Date.now();
      if (now - lastReport < 1_000) return;
      lastReport = now;
      const rate = done / Math.max((now - started) / 1000, 0.001);
      ctx.log.line(
        `${formatBytes(done)} of ${formatBytes(what.total)} (${((100 * done) / Math.max(what.total, 1)).toFixed(0)}%), ${formatBytes(rate)}/s, ETA ${formatDuration((what.total - done) / rate)}`,
      );
    },
    onFileDone: (file, downloaded) => ctx.log.line(`${file.path}: ${downloaded ? `downloaded, ${formatBytes(file.size)}, verified` : "already in the cache"}`),
  });
  const seconds = (Date.now() - started) / 1000;
  ctx.log.note(`downloaded ${formatBytes(done)} in ${formatDuration(seconds)}${done > 0 ? ` (${formatBytes(done / Math.max(seconds, 0.001))}/s)` : ""}`);
}
