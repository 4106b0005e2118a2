import { readdir, rm } from "node:fs/promises";
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
