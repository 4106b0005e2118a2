import type { Output } from "./output.ts";

export interface Wait {
  /** Ends the wait; the spinner's line is cleared. */
  stop(): void;
}

/**
 * One long wait with no step list around it (serve until ready, ask until the first token,
 * doctor's probes): an ora spinner on stderr at a terminal, loaded only then. Elsewhere (CI, a
 * pipe, --json, --quiet) nothing: the caller's plain lines say what it waits for.
 */
export async function waitFor(output: Output, text: string): Promise<Wait> {
  if (!output.interactive || output.json || output.quiet) return { stop: () => {} };
  const { default: ora } = await import("ora");
  const spinner = ora({ text, stream: process.stderr, discardStdin: false }).start();
  const started = Date.now();
  // The elapsed time, so that a long load is seen to be alive.
  const timer = setInterval(() => (spinner.text = `${text} (${Math.round((Date.now() - started) / 1000)} s)`), 1_000);
  timer.unref();
  return {
    stop: () => {
      clearInterval(timer);
      spinner.stop();
    },
  };
}
