import { Listr } from "listr2";
import type { StepExecutor, StepOutcome } from "../pipeline/runner.ts";
import type { Output } from "./output.ts";

/** In CI logs, a step's latest line at most this often: enough to see it move, not a flood. */
const plainLineIntervalMs = 10_000;

/**
 * The pipeline under listr2: a live display on a terminal, plain lines in CI or a pipe, nothing
 * with --json (the document says what happened). Skipped steps say why.
 */
export async function runWithProgress(executors: readonly StepExecutor[], output: Output): Promise<StepOutcome[]> {
  const outcomes: StepOutcome[] = [];
  const renderer = output.json || output.quiet ? "silent" : output.interactive ? "default" : "simple";
  const list = new Listr(
    executors.map((executor) => ({
      title: `${executor.step.id}: ${executor.step.title}`,
      task: async (_ctx: unknown, task: { output: string | null; title: string; skip(message?: string): void }) => {
        let lastPlain = 0;
        const outcome = await executor
          .run({
            onStepLine: (_step, line) => {
              if (output.verbose) output.debug(`[${executor.step.id}] ${line}`);
              if (renderer === "default") {
                task.output = line;
              } else if (renderer === "simple" && Date.now() - lastPlain >= plainLineIntervalMs) {
                lastPlain = Date.now();
                task.output = line;
              }
            },
          })
          .catch((error: unknown) => {
            throw new ShownError(error);
          });
        outcomes.push(outcome);
        if (outcome.action === "skipped") task.skip(`${executor.step.id} [up to date]`);
        if (outcome.action === "not-selected") task.skip(`${executor.step.id} [not selected: ${outcome.state}]`);
      },
    })),
    {
      renderer,
      concurrent: false,
      exitOnError: true,
      // Errors are reported once, by the CLI's top-level handler.
      collectErrors: false,
      rendererOptions: { collapseSkips: false, showErrorMessage: false, formatOutput: "truncate", outputBar: 1 } as never,
      registerSignalListeners: false,
    },
  );
  try {
    await list.run();
  } catch (error) {
    throw error instanceof ShownError ? error.original : error;
  }
  return outcomes;
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
