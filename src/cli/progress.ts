import type { StepExecutor, StepOutcome } from "../pipeline/runner.ts";
import type { Output } from "./output.ts";

/** In CI logs, a running step's latest line at most this often: enough to see it move, not a flood. */
const plainLineIntervalMs = 10_000;

/**
 * The pipeline as a person sees it: a live listr2 display at a terminal, plain lines in CI or a
 * pipe, nothing with --json or --quiet (the document or the exit code says what happened). Only
 * the selected steps are shown, and a step with nothing to do is one short line. A failure is
 * shown as its first line here; the CLI's error handler prints the whole message once.
 */
export async function runWithProgress(executors: readonly StepExecutor[], output: Output): Promise<StepOutcome[]> {
  if (output.json || output.quiet) return runAll(executors);
  if (output.interactive) return runLive(executors, output);
  return runPlain(executors, output);
}

/** Runs every executor in order, silently: the steps that are not selected are judged all the same. */
async function runAll(executors: readonly StepExecutor[]): Promise<StepOutcome[]> {
  const outcomes: StepOutcome[] = [];
  for (const executor of executors) outcomes.push(await executor.run());
  return outcomes;
}

async function runPlain(executors: readonly StepExecutor[], output: Output): Promise<StepOutcome[]> {
  const width = Math.max(...executors.map((e) => e.step.id.length));
  const outcomes: StepOutcome[] = [];
  for (const executor of executors) {
    const name = executor.step.id.padEnd(width);
    let started = false;
    let lastShown = 0;
    const onStepLine = (_step: unknown, line: string) => {
      if (output.verbose) output.debug(`[${executor.step.id}] ${line}`);
      // The first line a step logs is when it is known to run, not to be skipped.
      if (!started) {
        started = true;
        output.info(`▸ ${name}  ${executor.step.title}`);
        return;
      }
      const now = Date.now();
      if (now - lastShown < plainLineIntervalMs) return;
      lastShown = now;
      output.info(`  ${name}  ${line}`);
    };
    let outcome: StepOutcome;
    try {
      outcome = await executor.run({ onStepLine });
    } catch (error) {
      if (started) output.info(`✖ ${name}  failed`);
      throw error;
    }
    outcomes.push(outcome);
    if (outcome.action === "skipped") output.info(`· ${name}  up to date`);
    if (outcome.action === "ran") output.info(`✔ ${name}  done in ${formatSeconds(outcome.seconds ?? 0)}`);
  }
  return outcomes;
}

/**
 * listr2's live display, one task per selected step. A step that is not selected still runs its
 * executor (it is judged, and its outputs feed the next steps), inside the task of the selected
 * step after it, or after the list.
 */
async function runLive(executors: readonly StepExecutor[], output: Output): Promise<StepOutcome[]> {
  const outcomes: StepOutcome[] = [];
  const pending: StepExecutor[] = [];
  const runUnselected = async () => {
    for (const executor of pending.splice(0)) outcomes.push(await executor.run());
  };
  const tasks = [];
  for (const executor of executors) {
    if (!executor.selected) {
      pending.push(executor);
      continue;
    }
    const before = pending.splice(0);
    tasks.push({
      title: `${executor.step.id}: ${executor.step.title}`,
      task: async (_ctx: unknown, task: { output: string | null; title: string; skip(message?: string): void }) => {
        for (const unselected of before) outcomes.push(await unselected.run());
        const outcome = await executor
          .run({
            onStepLine: (_step, line) => {
              if (output.verbose) output.debug(`[${executor.step.id}] ${line}`);
              task.output = line;
            },
          })
          .catch((error: unknown) => {
            throw new ShownError(error);
          });
        outcomes.push(outcome);
        if (outcome.action === "skipped") task.skip(`${executor.step.id}: up to date`);
      },
    });
  }
  // Loaded only for a person at a terminal: CI and scripts never need it.
  const { Listr } = await import("listr2");
  const list = new Listr(tasks, {
    renderer: "default",
    concurrent: false,
    exitOnError: true,
    collectErrors: false,
    rendererOptions: { collapseSkips: true, showErrorMessage: true, formatOutput: "truncate", outputBar: 1 } as never,
    registerSignalListeners: false,
  });
  try {
    await list.run();
  } catch (error) {
    throw error instanceof ShownError ? error.original : error;
  }
  await runUnselected();
  return outcomes;
}

function formatSeconds(seconds: number): string {
  return seconds < 60 ? `${seconds.toFixed(1)} s` : `${Math.floor(seconds / 60)} min ${Math.round(seconds % 60)} s`;
}

/**
 * What listr2 shows of a failed step: the first line only ("[FAILED: Step engine failed: …]").
 * The whole message, with the log's last lines, is printed once, by the CLI's error handler.
 */
class ShownError extends Error {
  readonly original: unknown;
  constructor(original: unknown) {
    super((original instanceof Error ? original.message : String(original)).split("\n")[0]);
    this.original = original;
  }
}
