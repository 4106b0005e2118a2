import { mkdir, readdir, rename, rm } from "node:fs/promises";
import { basename, dirname, join } from "node:path";

/**
 * Outputs are built in `<final>.tmp-staging` beside their final folder and renamed into place
 * when complete: a kill half-way never leaves something that looks finished (reliability R1).
 * One name is enough, since the workdir lock admits one writer; a fixed name keeps `plan`
 * output the same from one call to the next.
 */
export function stagingFor(final: string): string {
  return `${final}.tmp-staging`;
}

/** Staging folders of runs that were killed: ours to remove while holding the workdir lock. */
export async function removeStaleStaging(final: string): Promise<void> {
  const prefix = `${basename(final)}.tmp-`;
  const names = await readdir(dirname(final)).catch(() => [] as string[]);
  await Promise.all(
    names.filter((n) => n.startsWith(prefix)).map((n) => rm(join(dirname(final), n), { recursive: true, force: true })),
  );
}

/**
 * The one way a step produces a folder: `build` fills `staging` (made empty for it), and only
 * when it returns is the folder renamed to `final`, the previous one moved aside first and
 * removed after. A build that fails or is interrupted leaves `final` as it was and no staging
 * folder; a kill leaves `final` as it was (or, between the two renames, a `.tmp-old` folder)
 * and a staging folder, both removed by the next call. Every step that makes a folder (the
 * clones, the checkpoint, the engine, the model repository) goes through here.
 */
export async function buildFolder(final: string, staging: string, build: (staging: string) => Promise<void>): Promise<void> {
  await removeStaleStaging(final);
  await mkdir(staging, { recursive: true });
  const aside = `${final}.tmp-old`;
  try {
    await build(staging);
    await rename(final, aside).catch((error: NodeJS.ErrnoException) => {
      if (error.code !== "ENOENT") throw error;
    });
    await rename(staging, final);
  } finally {
    await rm(staging, { recursive: true, force: true });
    await rm(aside, { recursive: true, force: true });
  }
}
