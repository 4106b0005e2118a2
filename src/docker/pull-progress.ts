import { FailedError } from "../common/errors.ts";
import { formatBytes } from "../common/format.ts";
import type { DockerClient, PullProgress } from "./docker-client.ts";

/** Where pull progress goes: a step's log, or the terminal for `serve`. */
export interface PullLog {
  /** A notable event: the pull starts. */
  note(text: string): void;
  /** Progress: a layer finished, or the running total. */
  line(text: string): void;
}

/** The running total at most this often; finished layers are reported as they finish. */
const totalIntervalMs = 2_000;

/**
 * `docker pull` with per-layer progress: each layer when done, and the running total. Errors
 * inside the progress stream fail it (the client treats them as failures, never as the end).
 * `hint` is what to do when the pull fails, appended to the engine's reason.
 */
export async function pullWithProgress(docker: DockerClient, ref: string, options: { log: PullLog; signal: AbortSignal; hint: string }): Promise<void> {
  const { log } = options;
  log.note(`pulling ${ref}`);
  const layers = new Map<string, { current: number; total: number; done: boolean }>();
  let lastReport = 0;
  const report = (force = false) => {
    const now = Date.now();
    if (!force && now - lastReport < totalIntervalMs) return;
    lastReport = now;
    const all = [...layers.values()];
    const current = all.reduce((n, l) => n + l.current, 0);
    const total = all.reduce((n, l) => n + l.total, 0);
    log.line(`${ref}: ${all.filter((l) => l.done).length}/${all.length} layers, ${formatBytes(current)} of ${formatBytes(total)}`);
  };
  try {
    await docker.pullImage(ref, {
      signal: options.signal,
      onProgress: (p: PullProgress) => {
        // "Pulling from <repo>" carries the tag as its id: it is no layer.
        if (!p.layer || p.status.startsWith("Pulling from")) {
          log.line(p.status);
          return;
        }
        const layer = layers.get(p.layer) ?? { current: 0, total: 0, done: false };
        if (p.total) Object.assign(layer, { current: p.current ?? 0, total: p.total });
        if (/^(Pull complete|Already exists)/.test(p.status)) {
          layer.done = true;
          layer.current = layer.total;
          log.line(`${p.layer}: ${p.status}`);
        }
        layers.set(p.layer, layer);
        report();
      },
    });
  } catch (error) {
    if (error instanceof FailedError) throw new FailedError(`could not pull ${ref}: ${error.message}. ${options.hint}`, { cause: error });
    throw error;
  }
  if (layers.size > 0) report(true);
}
