/**
 * The few error classes the top-level catch in `cli/main.ts` maps to exit codes and to the
 * `{ "error": { "kind", … } }` document of `--json`. Anything else that reaches the top is a bug.
 */

/** A wrong flag, a bad value, an invalid config file: exit 2, nothing was run. */
export class UsageError extends Error {
  readonly exitCode = 2;
  readonly kind: string = "usage";
}

/** Every problem found in the settings at once, one line each, naming the key and the source. */
export class ConfigError extends UsageError {
  override readonly kind = "config";
  readonly issues: readonly string[];
  constructor(issues: readonly string[]) {
    super(`Invalid configuration:\n- ${issues.join("\n- ")}`);
    this.issues = issues;
  }
}

/** A command that a later version fills in. It says so rather than pretending to work. */
export class NotImplementedError extends UsageError {
  override readonly kind = "not-implemented";
}

/** Something the tool tried failed (a step, a request, a pre-flight check): exit 1. */
export class FailedError extends Error {
  readonly exitCode = 1;
  readonly kind: string = "failed";
}

/** Ctrl-C: what the tool started has been stopped; work already done stays done. Exit 130. */
export class InterruptedError extends Error {
  readonly exitCode = 130;
  readonly kind = "interrupted";
}

export type ExitCode = 0 | 1 | 2 | 130;

/** An error the user can act on, as opposed to a bug. */
export type KnownError = UsageError | FailedError | InterruptedError;

export function isKnownError(error: unknown): error is KnownError {
  return error instanceof UsageError || error instanceof FailedError || error instanceof InterruptedError;
}

/** A pipeline step failed: names the step, quotes the end of its log and points at the whole log. */
export class StepFailedError extends FailedError {
  override readonly kind = "step-failed";
  readonly step: string;
  readonly logFile: string;
  constructor(step: string, logFile: string, summary: string, tail: readonly string[] = [], options?: ErrorOptions) {
    const quoted = tail.length > 0 ? `\n  Last lines:\n${tail.map((l) => `    ${l}`).join("\n")}` : "";
    super(`Step ${step} failed: ${summary}${quoted}\n  Full log: ${logFile}`, options);
    this.step = step;
    this.logFile = logFile;
  }
}
