import type { Output } from "./output.ts";

/**
 * Ctrl-C, the way Terraform treats it: the first asks everything to stop gracefully (containers
 * get `docker stop` and are removed, finished work is kept); the second stops at once.
 */
export function handleInterrupts(output: Output, onSecond: () => Promise<void>): { signal: AbortSignal } & Disposable {
  const controller = new AbortController();
  let count = 0;
  const onSignal = (name: NodeJS.Signals) => {
    count++;
    if (count === 1) {
      output.warn(`${name === "SIGINT" ? "interrupted" : name}: stopping what was started (press Ctrl-C again to kill it at once)`);
      controller.abort();
      return;
    }
    output.warn("second interrupt: killing the containers of this run now");
    void onSecond().finally(() => process.exit(130));
  };
  const signals: NodeJS.Signals[] = ["SIGINT", "SIGTERM", "SIGHUP"];
  for (const s of signals) process.on(s, onSignal);
  return {
    signal: controller.signal,
    [Symbol.dispose]: () => {
      // Once interrupted, keep listening until the process ends: a second Ctrl-C during the
      // cleanup must still kill at once rather than fall to Node's default (a bare exit).
      if (count > 0) return;
      for (const s of signals) process.off(s, onSignal);
    },
  };
}
