import { existsSync, writeFileSync } from "node:fs";

/**
 * Where the hooks read their LLAMA3_TRT_TEST_* switches: the environment the CLI's main() hands
 * over (it is the one place that reads process.env); empty, so off, until then.
 */
let env: Readonly<Record<string, string | undefined>> = {};

export function configureTestHooks(from: Readonly<Record<string, string | undefined>>): void {
  env = from;
}

/**
 * Test-only pause points. With LLAMA3_TRT_TEST_PAUSE_AT=<name>, the CLI writes the file named by
 * LLAMA3_TRT_TEST_PAUSE_MARKER on reaching that point and then waits forever, so that a test can
 * `kill -9` it at exactly that instant (a step boundary, a state write half done) and check
 * what the next run makes of it (reliability cases 21 and 24). With LLAMA3_TRT_TEST_RESUME_ON_REMOVE=1
 * it goes on once the test removes the marker: a race made to order (case 31's port taken
 * between the check and the start). Without the variable: nothing.
 */
export async function pausePoint(name: string): Promise<void> {
  if (env.LLAMA3_TRT_TEST_PAUSE_AT !== name) return;
  const marker = env.LLAMA3_TRT_TEST_PAUSE_MARKER;
  if (marker) writeFileSync(marker, name);
  if (marker && env.LLAMA3_TRT_TEST_RESUME_ON_REMOVE === "1") {
    while (existsSync(marker)) await new Promise((resolve) => setTimeout(resolve, 50));
    return;
  }
  // A pending promise alone does not keep Node alive: a timer does, until the test kills us.
  await new Promise(() => setInterval(() => {}, 1 << 30));
}

/**
 * Test-only: LLAMA3_TRT_TEST_PART_BYTES makes the downloader split files into ranges of that many
 * bytes, so the tests' small shards exercise the path real multi-gigabyte shards take.
 */
export function testPartBytes(): number | undefined {
  const value = Number(env.LLAMA3_TRT_TEST_PART_BYTES);
  return Number.isInteger(value) && value > 0 ? value : undefined;
}

/**
 * Test-only: LLAMA3_TRT_TEST_HASH_STEP_BYTES tells the downloader's hashing thread about new
 * bytes on disk every that many bytes (4 MiB for real), so that the tests' small files are
 * hashed as they land rather than all at the end.
 */
export function testHashStepBytes(): number | undefined {
  const value = Number(env.LLAMA3_TRT_TEST_HASH_STEP_BYTES);
  return Number.isInteger(value) && value > 0 ? value : undefined;
}

/**
 * Test-only: LLAMA3_TRT_TEST_TEMP_RANDOM=<12 hex digits> makes the first temp file of every atomic
 * write `.<name>.<those digits>.tmp`, so that a test driving the CLI as a subprocess can plant a
 * symlink at that exact name beforehand and check it is neither followed nor overwritten (case
 * 40b); the write then goes on under fresh random names. Plant it after the start-up sweep (at a
 * pause point, say): a command that takes the workdir lock first removes every `.<name>.<hex>.tmp`
 * in the workdir. A value of another shape makes the write fail instead of quietly not applying.
 * Without the variable: nothing.
 */
export function testTempRandom(): string | undefined {
  return env.LLAMA3_TRT_TEST_TEMP_RANDOM || undefined;
}
