import { writeFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { findGateway, gatewayArgv, gatewayEnv, gatewayRecordFile, processStart, stopGateway } from "../../../src/gateway/process.ts";
import { WorkdirPaths } from "../../../src/pipeline/workdir.ts";
import { tempDir } from "../../helpers/tmp.ts";

const record = (fields: Record<string, unknown>) => JSON.stringify({ url: "http://127.0.0.1:9000", tritonUrl: "http://127.0.0.1:8000", startedAt: "2026-01-01T00:00:00Z", ...fields });

describe("finding the gateway again", () => {
  it("no record: not running", async () => {
    using dir = tempDir();
    expect(await findGateway(new WorkdirPaths(dir.path))).toEqual({ state: "not running" });
  });

  it("a record whose process is the one that wrote it: running", async () => {
    using dir = tempDir();
    const paths = new WorkdirPaths(dir.path);
    writeFileSync(gatewayRecordFile(paths), record({ pid: process.pid, processStart: processStart(process.pid) }));
    expect(await findGateway(paths)).toMatchObject({ state: "running", record: { pid: process.pid } });
  });

  it("a pid now used by another process (its start time differs), a dead pid, a garbled file: stale, and stop only removes the file", async () => {
    using dir = tempDir();
    const paths = new WorkdirPaths(dir.path);
    expect(processStart(process.pid)).toMatch(/^\d+$/);
    for (const text of [record({ pid: process.pid, processStart: "1" }), record({ pid: 2 ** 22 + 1, processStart: null }), "{half", record({ pid: -1, processStart: null })]) {
      writeFileSync(gatewayRecordFile(paths), text);
      expect((await findGateway(paths)).state, text).toBe("stale");
      // Never a signal to a process that is not the gateway (here: this test's own).
      expect(await stopGateway(paths)).toBeUndefined();
      expect(await findGateway(paths)).toEqual({ state: "not running" });
    }
  });
});

describe("the gateway's command line", () => {
  it("names the workdir, Triton (HTTP and gRPC), the address, the model and the record; no key", () => {
    const paths = new WorkdirPaths("/w");
    expect(gatewayArgv({ paths, host: "127.0.0.1", port: 9000, tritonUrl: "http://127.0.0.1:8000", tritonGrpc: "127.0.0.1:8001", model: "m/n", modelDir: "/models/n" })).toEqual([
      "--workdir", "/w", "gateway", "--triton-url", "http://127.0.0.1:8000", "--triton-grpc", "127.0.0.1:8001", "--host", "127.0.0.1", "--port", "9000", "--model", "m/n", "--model-dir", "/models/n", "--record", "/w/gateway.json",
    ]);
  });
});

describe("the gateway's environment", () => {
  it("keeps what a process needs, drops every secret it has no use for, and adds the API key", () => {
    const env = {
      PATH: "/usr/bin",
      HOME: "/root",
      CI: "1",
      LLAMA3_TRT_TEST_PAUSE_AT: "x",
      HF_TOKEN: "hf_secret",
      DOCKER_HOST: "tcp://u:p@h:2376",
      LLAMA3_TRT_TRTLLM_REPO_URL: "https://u:ghp_x@github.com/x.git",
      LLAMA3_TRT_API_KEY: "old-key-value",
      AWS_SECRET_ACCESS_KEY: "s",
      UNSET: undefined,
    };
    expect(gatewayEnv(env, "sk-resolved-key")).toEqual({ PATH: "/usr/bin", HOME: "/root", CI: "1", LLAMA3_TRT_TEST_PAUSE_AT: "x", LLAMA3_TRT_API_KEY: "sk-resolved-key" });
    expect(gatewayEnv(env, null)).toEqual({ PATH: "/usr/bin", HOME: "/root", CI: "1", LLAMA3_TRT_TEST_PAUSE_AT: "x" });
  });
});
