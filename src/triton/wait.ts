import { systemClock, type Clock } from "../common/clock.ts";
import { InterruptedError } from "../common/errors.ts";

/** What the wait needs to know of the server's container at each round. */
export interface ContainerState {
  readonly running: boolean;
  readonly exitCode: number | null;
  readonly oomKilled: boolean;
}

export interface ProbeResult {
  readonly ok: boolean;
  /** What the last probe saw, for the timeout message: "HTTP 400", "connection refused". */
  readonly detail: string;
}

export type Readiness =
  | { readonly ready: true; readonly ms: number }
  | { readonly ready: false; readonly reason: "exited"; readonly exitCode: number | null; readonly oomKilled: boolean; readonly ms: number }
  | { readonly ready: false; readonly reason: "gone"; readonly ms: number }
  | { readonly ready: false; readonly reason: "timeout"; readonly lastProbe: string; readonly ms: number };

export interface WaitOptions {
  /** One readiness check (GET /v2/health/ready); must not throw. */
  readonly probe: () => Promise<ProbeResult>;
  /** The container's state; undefined once it is gone (removed by `stop`, or by hand). */
  readonly container: () => Promise<ContainerState | undefined>;
  readonly timeoutMs: number;
  readonly intervalMs?: number;
  readonly clock?: Clock;
  readonly signal: AbortSignal;
}

/** Half a second between probes: Triton answers within milliseconds once its models are loaded. */
export const readinessIntervalMs = 500;

/**
 * Waits until the server says it is ready, like testcontainers' HttpWaitStrategy with
 * abort-on-exit: a container that exits (or vanishes) ends the wait at once rather than at the
 * timeout, since it can never become ready. Ctrl-C ends it with InterruptedError.
 */
export async function waitForReady(options: WaitOptions): Promise<Readiness> {
  const clock = options.clock ?? systemClock;
  const interval = options.intervalMs ?? readinessIntervalMs;
  const started = clock.now();
  const elapsed = () => clock.now() - started;
  let lastProbe = "no answer yet";
  for (;;) {
    if (options.signal.aborted) throw new InterruptedError("interrupted while waiting for the server");
    const state = await options.container();
    if (!state) return { ready: false, reason: "gone", ms: elapsed() };
    if (!state.running) return { ready: false, reason: "exited", exitCode: state.exitCode, oomKilled: state.oomKilled, ms: elapsed() };
    const probe = await options.probe();
    if (probe.ok) return { ready: true, ms: elapsed() };
    lastProbe = probe.detail;
    const left = options.timeoutMs - elapsed();
    if (left <= 0) return { ready: false, reason: "timeout", lastProbe, ms: elapsed() };
    try {
      await clock.sleep(Math.min(interval, left), options.signal);
    } catch {
      throw new InterruptedError("interrupted while waiting for the server");
    }
  }
}

/** Triton's KServe v2 health endpoints: what `serve` waits on and what a Kubernetes probe asks. */
export const healthPaths = { ready: "/v2/health/ready", live: "/v2/health/live" } as const;

/** GET `<baseUrl>/v2/health/ready`: 200 means every model is loaded (Triton's strict readiness). */
export function httpReadyProbe(baseUrl: string, requestTimeoutMs = 2_000): () => Promise<ProbeResult> {
  const url = `${baseUrl}${healthPaths.ready}`;
  return async () => {
    try {
      const response = await fetch(url, { signal: AbortSignal.timeout(requestTimeoutMs) });
      await response.body?.cancel();
      return { ok: response.status === 200, detail: `HTTP ${response.status}` };
    } catch (error) {
      return { ok: false, detail: connectionProblem(error) };
    }
  };
}

/** fetch's "fetch failed" says nothing: name the socket error under it. */
export function connectionProblem(error: unknown): string {
  const cause = (error as { cause?: { code?: string } } | undefined)?.cause;
  const code = cause?.code ?? (error as { code?: string } | undefined)?.code;
  if (code === "ECONNREFUSED") return "connection refused";
  if (code === "ECONNRESET" || code === "UND_ERR_SOCKET") return "connection reset";
  if (code === "ENOTFOUND" || code === "EAI_AGAIN") return "host not found";
  if ((error as Error | undefined)?.name === "TimeoutError" || code === "UND_ERR_CONNECT_TIMEOUT") return "no answer in time";
  // e.g. fetch's "bad port" for ports browsers refuse (9, 25, 6000…).
  const causeMessage = (cause as { message?: unknown } | undefined)?.message;
  return code ?? (typeof causeMessage === "string" ? causeMessage : error instanceof Error ? error.message : String(error));
}
