import { createServer, type Server } from "node:net";
import { describe, expect, it } from "vitest";
import { checkPort } from "../../../src/server/ports.ts";

/** A listener on a free loopback port, closed by `using`. */
async function listening(host = "127.0.0.1"): Promise<{ port: number } & AsyncDisposable> {
  const server: Server = createServer();
  await new Promise<void>((resolve) => server.listen({ host, port: 0 }, resolve));
  const port = (server.address() as { port: number }).port;
  return { port, [Symbol.asyncDispose]: () => new Promise((resolve) => server.close(() => resolve())) };
}

describe("the pre-flight port check (case 31)", () => {
  it("finds a port taken on the same address, and names this process as its holder", async () => {
    await using taken = await listening();
    const check = await checkPort("127.0.0.1", taken.port);
    expect(check.state).toBe("in-use");
    // Linux: the holder is found through /proc.
    if (process.platform === "linux") expect(check).toMatchObject({ holder: `pid ${process.pid} ${(await import("node:fs")).readFileSync("/proc/self/comm", "utf8").trim()}` });
  });

  it("sees a loopback listener when the server is to be published on every interface", async () => {
    await using taken = await listening();
    expect((await checkPort("0.0.0.0", taken.port)).state).toBe("in-use");
  });

  it("finds a free port free, and releases it again", async () => {
    const port = await (async () => {
      await using probe = await listening();
      return probe.port;
    })();
    expect(await checkPort("127.0.0.1", port)).toEqual({ state: "free" });
    expect(await checkPort("127.0.0.1", port)).toEqual({ state: "free" });
  });

  it("says when the address is not one of this machine's", async () => {
    expect(await checkPort("192.0.2.1", 8000)).toEqual({ state: "not-local" });
  });
});
