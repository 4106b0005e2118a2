import { createHash, type Hash } from "node:crypto";
import { createWriteStream } from "node:fs";
import { lstat, mkdir, readlink, rename, rm, stat, symlink } from "node:fs/promises";
import { dirname, join } from "node:path";
import { Readable, Transform } from "node:stream";
import { pipeline } from "node:stream/promises";
import { writeFileAtomic } from "../common/atomic-file.ts";
import { FailedError } from "../common/errors.ts";
import { blobLinkTarget, blobPath, refPath, snapshotDir } from "./cache.ts";
import type { HubClient, RepoFile } from "./hub-client.ts";

export interface DownloadRequest {
  readonly repo: string;
  readonly revision: string;
  readonly commit: string;
  readonly files: readonly RepoFile[];
  readonly cacheDir: string;
  /** Names this process's partial files, so two writers never share one (huggingface_hub #4306). */
  readonly runId: string;
  readonly onBytes: (bytes: number) => void;
  readonly onFileDone: (file: RepoFile, downloaded: boolean) => void;
}

/** Files fetched at once: enough to fill a link, few enough to be polite to the Hub. */
const concurrentFiles = 4;

/** Bytes still to fetch: files whose blob is not in the cache with the right size. */
export async function missingBytes(req: Pick<DownloadRequest, "repo" | "files" | "cacheDir">): Promise<number> {
  let total = 0;
  for (const file of req.files) if (!(await blobComplete(req.cacheDir, req.repo, file))) total += file.size;
  return total;
}

async function blobComplete(cacheDir: string, repo: string, file: RepoFile): Promise<boolean> {
  try {
    return (await stat(blobPath(cacheDir, repo, file.oid))).size === file.size;
  } catch {
    return false;
  }
}

/**
 * Puts every file into the cache: blob (verified by size and hash before it gets its final
 * name), snapshot link, and `refs/<revision>`. A blob already there costs nothing.
 */
export async function downloadToCache(client: HubClient, req: DownloadRequest): Promise<void> {
  const queue = [...req.files];
  const worker = async () => {
    for (let file = queue.shift(); file; file = queue.shift()) {
      let downloaded = false;
      if (!(await blobComplete(req.cacheDir, req.repo, file))) {
        await fetchBlob(client, req, file);
        downloaded = true;
      }
      await linkSnapshot(req, file);
      req.onFileDone(file, downloaded);
    }
  };
  await Promise.all(Array.from({ length: Math.min(concurrentFiles, queue.length) }, worker));
  if (req.revision !== req.commit) {
    await mkdir(dirname(refPath(req.cacheDir, req.repo, req.revision)), { recursive: true });
    // No trailing newline: huggingface_hub writes the bare commit.
    await writeFileAtomic(refPath(req.cacheDir, req.repo, req.revision), req.commit);
  }
}

async function fetchBlob(client: HubClient, req: DownloadRequest, file: RepoFile): Promise<void> {
  const target = blobPath(req.cacheDir, req.repo, file.oid);
  const partial = `${target}.${req.runId}.incomplete`;
  await mkdir(dirname(target), { recursive: true });
  const url = `${client.hub.endpoint}/${req.repo}/resolve/${req.commit}/${file.path.split("/").map(encodeURIComponent).join("/")}`;
  const response = await client.request(url, { repo: req.repo, revision: req.commit, path: file.path });
  if (!response.body) throw new FailedError(`The Hub sent no content for ${file.path}`);
  const hash = file.lfs ? createHash("sha256") : gitBlobHash(file.size);
  let received = 0;
  const count = new Transform({
    transform(chunk: Buffer, _encoding, done) {
      received += chunk.length;
      hash.update(chunk);
      req.onBytes(chunk.length);
      done(null, chunk);
    },
  });
  try {
    await pipeline(Readable.fromWeb(response.body as never), count, createWriteStream(partial, { flags: "w", mode: 0o644 }));
    if (received !== file.size) {
      throw new FailedError(
        `Consistency check failed: ${file.path} should be ${file.size} bytes but ${received} arrived. Rerun to fetch it again.`,
      );
    }
    const digest = hash.digest("hex");
    if (digest !== file.oid) {
      throw new FailedError(`${file.path} is corrupt: expected ${file.lfs ? "sha256" : "git sha1"} ${file.oid}, got ${digest}. Rerun to fetch it again.`);
    }
    await rename(partial, target);
  } catch (error) {
    await rm(partial, { force: true });
    throw error;
  }
}

/** The git blob id of a regular file: sha1("blob <size>\0" + content). */
function gitBlobHash(size: number): Hash {
  return createHash("sha1").update(`blob ${size}\0`);
}

async function linkSnapshot(req: DownloadRequest, file: RepoFile): Promise<void> {
  const link = join(snapshotDir(req.cacheDir, req.repo, req.commit), file.path);
  const target = blobLinkTarget(file.path, file.oid);
  await mkdir(dirname(link), { recursive: true });
  try {
    if ((await lstat(link)).isSymbolicLink() && (await readlink(link)) === target) return;
    await rm(link, { force: true });
  } catch {
    // Not there yet.
  }
  await symlink(target, link);
}
