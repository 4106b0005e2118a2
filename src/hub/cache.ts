import { join, posix, win32 } from "node:path";
import { FailedError } from "../common/errors.ts";

/**
 * The Hugging Face cache layout (huggingface_hub's `manage-cache` guide), so that this tool,
 * `huggingface-cli` and transformers share one copy:
 *   <cache>/models--org--name/blobs/<etag>
 *   <cache>/models--org--name/snapshots/<commit>/<path> -> ../../blobs/<etag>
 *   <cache>/models--org--name/refs/<revision>   (the commit, no newline)
 */
export function repoFolder(cacheDir: string, repo: string): string {
  return join(cacheDir, `models--${repo.split("/").join("--")}`);
}

export function snapshotDir(cacheDir: string, repo: string, commit: string): string {
  return join(repoFolder(cacheDir, repo), "snapshots", commit);
}

export function blobPath(cacheDir: string, repo: string, oid: string): string {
  return join(repoFolder(cacheDir, repo), "blobs", oid);
}

export function refPath(cacheDir: string, repo: string, revision: string): string {
  return join(repoFolder(cacheDir, repo), "refs", revision);
}

/** The relative link from `snapshots/<commit>/<path>` to its blob: one `..` per folder level. */
export function blobLinkTarget(path: string, oid: string): string {
  const depth = path.split("/").length - 1;
  return posix.join(...Array<string>(depth + 2).fill(".."), "blobs", oid);
}

/**
 * Refuses a file name from a remote listing that could escape the snapshot folder, under POSIX
 * and Windows rules alike (huggingface_hub #4540, CVE-2026-15717; reliability case 18).
 * Returns the reason, or undefined when the name is safe.
 */
export function unsafeRelativePath(path: string): string | undefined {
  if (path.length === 0) return "empty name";
  if (path.includes("\0")) return "NUL byte";
  if (posix.isAbsolute(path) || win32.isAbsolute(path)) return "absolute path";
  // Segment by segment, the first one included: `D:relative`, `folder/C:\\x`.
  for (const segment of path.split(/[\\/]/)) {
    if (segment === "..") return "`..` segment";
    if (/^[A-Za-z]:/.test(segment)) return "drive letter";
  }
  if (path.includes("\\")) return "backslash (a Windows path separator)";
  return undefined;
}

/** Blob and commit names come from the server too: they are folder and file names here. */
export function validOid(oid: string, lfs: boolean): boolean {
  return lfs ? /^[0-9a-f]{64}$/.test(oid) : /^[0-9a-f]{40}$/.test(oid);
}

export function validCommit(commit: string): boolean {
  return /^[0-9a-f]{40}$/.test(commit);
}

/**
 * Refuses a listing any of whose names would be an unsafe path here: file names, blob ids and the
 * commit all come from the server (reliability case 18). Called before anything is written.
 */
export function refuseUnsafeListing(repo: string, commit: string, files: readonly { path: string; oid: string; lfs: boolean }[]): void {
  if (!validCommit(commit)) {
    throw new FailedError(`Invalid commit from the Hub for ${repo}: ${JSON.stringify(commit)}; refusing to download anything.`);
  }
  for (const file of files) {
    const unsafe = unsafeRelativePath(file.path);
    if (unsafe) {
      throw new FailedError(
        `Invalid filename ${JSON.stringify(file.path)} in ${repo} (${unsafe}): refusing to download anything. Ask the repository owner to rename it.`,
      );
    }
    if (!validOid(file.oid, file.lfs)) {
      throw new FailedError(`Invalid oid from the Hub for ${file.path} in ${repo}: ${JSON.stringify(file.oid)}; refusing to download anything.`);
    }
  }
}

/** Top-level files conversion and the tokenizer read. Everything else (`original/`, .bin, .pth, .gguf) is skipped. */
const neededNames = new Set([
  "config.json",
  "generation_config.json",
  "tokenizer.json",
  "tokenizer_config.json",
  "special_tokens_map.json",
  "model.safetensors.index.json",
]);

export function neededForConversion(path: string): boolean {
  if (path.includes("/")) return false;
  return neededNames.has(path) || path.endsWith(".safetensors");
}
