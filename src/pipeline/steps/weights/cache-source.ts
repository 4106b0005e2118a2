import { readdir, readFile, realpath, stat } from "node:fs/promises";
import { basename, join } from "node:path";
import { FailedError } from "../../../common/errors.ts";
import { neededForConversion, refPath, repoFolder, snapshotDir, validCommit } from "../../../hub/cache.ts";
import { missingForConversion, readListed, requiredFiles, type ModelFiles, type WeightsSource } from "./source.ts";

/**
 * HF_HUB_OFFLINE: the commit from `refs/`, the files from the snapshot, and not one request
 * (reliability case 14). Anything missing is named; nothing can be fetched.
 */
export function cacheSource(cacheDir: string, repo: string, revision: string): WeightsSource {
  return {
    kind: "cache",
    async list(): Promise<ModelFiles> {
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
      const linked = (await readdir(dir).catch(() => [] as string[])).filter(neededForConversion);
      const files = [];
      // A link to a blob that is not there is a missing file, as much as no link at all.
      for (const name of [...new Set([...requiredFiles, ...linked])].sort()) {
        const blob = await realpath(join(dir, name)).catch(() => undefined);
        if (blob) files.push({ path: name, size: (await stat(blob)).size, oid: basename(blob) });
      }
      const missing = await missingForConversion(files, dir);
      if (missing.length > 0) {
        throw new FailedError(
          `HF_HUB_OFFLINE is set and the cached snapshot ${dir} is incomplete: missing ${missing.join(", ")}. Unset HF_HUB_OFFLINE to download the rest.`,
        );
      }
      return { commit, mountDir: repoFolder(cacheDir, repo), modelPath: `snapshots/${commit}`, files };
    },
    bytesToDownload: async () => 0,
    preflight: async () => {},
    fetch: async () => {},
    readText: (model, name) => readListed(model, join(model.mountDir, model.modelPath), name),
  };
}
