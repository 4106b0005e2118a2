/**
 * The integration tests' engine watch (test/helpers/engine-watch.ts): an engine that goes away
 * or hangs under a test is reported within seconds. A fake engine answers `/_ping` over a real
 * unix socket, then dies or stops answering.
 */
import { createServer, type Server } from "node:http";
import type { Socket } from "node:net";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { ping, watchEngine } from "../helpers/engine-watch.ts";
import { tempDir } from "../helpers/tmp.ts";

interface FakeEngine {
  host: string;
  /** Stops answering pings (connections stay open, requests hang). */
  hang(): void;
  /** Closes the socket and every connection, as a killed dockerd does. */
  die(): Promise<void>;
}

const cleanups: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0)) await cleanup();
});

async function fakeEngine(): Promise<FakeEngine> {
  const dir = tempDir("engine-watch-");
  const socketPath = join(dir.path, "docker.sock");
  let hanging = false;
  const sockets = new Set<Socket>();
  const server: Server = createServer((req, res) => {
    if (hanging) return;
    res.writeHead(req.url === "/_ping" ? 200 : 404).end("OK");
  });
  server.on("connection", (s) => {
    sockets.add(s);
    s.once("close", () => sockets.delete(s));
  });
  await new Promise<void>((resolve) => server.listen(socketPath, resolve));
  const die = () =>
    new Promise<void>((resolve) => {
      for (const s of sockets) s.destroy();
      server.close(() => resolve());
    });
  cleanups.push(async () => {
    if (server.listening) await die();
    dir[Symbol.dispose]();
  });
  return { host: `unix://${socketPath}`, hang: () => (hanging = true), die };
}

async function goneWithin(watch: { gone: Error | undefined }, ms: number): Promise<number> {
  const started = Date.now();
  while (!watch.gone) {
    if (Date.now() - started > ms) throw new Error(`not reported within ${ms} ms`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
  return Date.now() - started;
}

describe("the engine watch", () => {
  it("stays quiet while the engine answers", async () => {
    const engine = await fakeEngine();
    expect(await ping(engine.host, 1_000)).toBe(true);
    const watch = watchEngine({ host: engine.host, intervalMs: 20, timeoutMs: 200 });
    cleanups.push(() => watch.stop());
    await new Promise((resolve) => setTimeout(resolve, 300));
    expect(watch.gone).toBeUndefined();
  });

  it("reports an engine that died within seconds, once, naming it and what to do", async () => {
    const engine = await fakeEngine();
    let calls = 0;
    const watch = watchEngine({ host: engine.host, intervalMs: 50, timeoutMs: 200, onGone: () => calls++ });
    cleanups.push(() => watch.stop());
    await new Promise((resolve) => setTimeout(resolve, 120));
    expect(watch.gone).toBeUndefined();
    await engine.die();
    expect(await ping(engine.host, 200)).toBe(false);
    await goneWithin(watch, 2_000);
    expect(watch.gone?.message).toBe(
      `The Docker engine at ${engine.host} stopped answering during this test (2 pings in a row failed). ` +
        "Is dockerd still running? Its log is .world/logs/dockerd.log; `npm run world:up` starts it again.",
    );
    await new Promise((resolve) => setTimeout(resolve, 200));
    expect(calls).toBe(1);
  });

  it("reports an engine that hangs (accepts, never answers) after the ping timeouts", async () => {
    const engine = await fakeEngine();
    engine.hang();
    const watch = watchEngine({ host: engine.host, intervalMs: 50, timeoutMs: 150, misses: 3 });
    cleanups.push(() => watch.stop());
    const ms = await goneWithin(watch, 3_000);
    // Three timed-out pings, one after another: not before 3 × 150 ms.
    expect(ms).toBeGreaterThanOrEqual(450);
    expect(watch.gone?.message).toContain("(3 pings in a row failed)");
  });
});
