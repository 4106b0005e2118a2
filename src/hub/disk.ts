import { statfs } from "node:fs/promises";
import { dirname } from "node:path";
import { FailedError } from "../common/errors.ts";
import { formatBytes } from "../common/format.ts";

/** Free bytes on the filesystem that holds `path` (or its nearest existing parent). */
export async function freeBytes(path: string): Promise<number> {
  try {
    const fs = await statfs(path);
    return fs.bavail * fs.bsize;
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== "ENOENT" || dirname(path) === path) throw error;
    return freeBytes(dirname(path));
  }
}

/** Room for metadata, links and the filesystem's own needs beyond the bytes themselves. */
export function diskMargin(bytes: number): number {
  return Math.ceil(bytes * 0.01) + 16 * 1024 * 1024;
}

/**
 * Refuses to start a download that cannot fit (reliability case 15): huggingface_hub only warns,
 * and a user finds out 15 GB later.
 */
export async function ensureRoom(dir: string, needed: number): Promise<void> {
  if (needed <= 0) return;
  const free = await freeBytes(dir);
  if (free < needed + diskMargin(needed)) {
    throw new FailedError(
      `Not enough disk space for the model: need ${formatBytes(needed + diskMargin(needed))} in ${dir}, ${formatBytes(free)} free. ` +
        "Free some space, or point HF_HUB_CACHE (or HF_HOME) at a larger disk.",
    );
  }
}
