/**
 * Watches the Docker engine while an integration test runs. When the engine stops answering,
 * the test fails within seconds with a message that says so, instead of hanging in a poll or a
 * CLI run until the suite's timeout: `until()` and `Sandbox.run()` check `engineGone()`, and the
 * CLI processes a test started are killed so that whatever awaits them returns.
 */
import { request } from "node:http";

export interface EngineWatch {
  /** Why the engine is taken to be gone (set once, after `misses` failed pings in a row). */
  readonly gone: Error | undefined;
  stop(): void;
}

export interface EngineWatchOptions {
  /** Where the engine listens: `unix:///var/run/docker.sock` or `tcp://host:port` (DOCKER_HOST). */
  readonly host: string;
  readonly intervalMs?: number;
  readonly timeoutMs?: number;
  /** Failed pings in a row before the engine counts as gone (one slow answer is not an outage). */
  readonly misses?: number;
  /** Called once when it is gone: kill what would otherwise wait for it. */
  readonly onGone?: (error: Error) => void;
}

/** One `GET /_ping`; resolves true on `200 OK`. */
export function ping(host: string, timeoutMs: number): Promise<boolean> {
  return new Promise((resolve) => {
    const target = host.startsWith("unix://")
      ? { socketPath: host.slice("unix://".length) }
      : { host: new URL(host.replace(/^tcp:/, "http:")).hostname, port: Number(new URL(host.replace(/^tcp:/, "http:")).port) };
    const req = request({ ...target, path: "/_ping", method: "GET", timeout: timeoutMs }, (res) => {
      res.resume();
      resolve(res.statusCode === 200);
    });
    req.once("timeout", () => req.destroy(new Error("timeout")));
    req.once("error", () => resolve(false));
    req.end();
  });
}

export function watchEngine(options: EngineWatchOptions): EngineWatch {
  const intervalMs = options.intervalMs ?? 1_000;
  const timeoutMs = options.timeoutMs ?? 2_000;
  const misses = options.misses ?? 2;
  let failed = 0;
  let gone: Error | undefined;
  let busy = false;
  const timer = setInterval(() => {
    if (busy || gone) return;
    busy = true;
    void ping(options.host, timeoutMs).then((ok) => {
      busy = false;
      failed = ok ? 0 : failed + 1;
      if (failed < misses || gone) return;
      gone = new Error(
        `The Docker engine at ${options.host} stopped answering during this test (${misses} pings in a row failed). ` +
          "Is dockerd still running? Its log is .world/logs/dockerd.log; `npm run world:up` starts it again.",
      );
      clearInterval(timer);
      options.onGone?.(gone);
    });
  }, intervalMs);
  timer.unref();
  return {
    get gone() {
      return gone;
    },
    stop: () => clearInterval(timer),
  };
}

/** The engine the tests use: DOCKER_HOST, else the default socket. */
export function dockerHost(): string {
  return process.env["DOCKER_HOST"] || "unix:///var/run/docker.sock";
}

let current: EngineWatch | undefined;

/** The watch of the running test (set by the integration setup file). */
export function setCurrentWatch(watch: EngineWatch | undefined): void {
  current = watch;
}

/** The error to fail with when the engine went away under the running test. */
export function engineGone(): Error | undefined {
  return current?.gone;
}
