import { describe, expect, it } from "vitest";
import { settingsSchema, type Settings } from "../../../src/config/schema.ts";
import { createBody } from "../../../src/docker/container-spec.ts";
import { serverContainerSpec } from "../../../src/server/server.ts";
import { containerUrls, serverUrls } from "../../../src/server/urls.ts";
import { portInUseMessage } from "../../../src/server/ports.ts";

const defaults = Object.fromEntries(Object.entries(settingsSchema).map(([k, s]) => [k, s.default])) as unknown as Settings;
const built = {
  engine: { dir: "/w/engine", tp: 2, maxBatchSize: 64, maxInputLen: 4096, maxOutputLen: 1024 },
  weights: { mountDir: "/h/hub/models--meta-llama--Meta-Llama-3-8B-Instruct", modelPath: "snapshots/abc", commit: "abc", files: [] },
  modelRepo: { dir: "/w/model-repo", configs: {} },
} as never;

describe("the server container", () => {
  const spec = serverContainerSpec(defaults, built);

  it("runs the v0.8.0 launch command line with one rank per GPU of the engine, as its main process", () => {
    expect(spec.image).toBe("nvcr.io/nvidia/tritonserver:24.03-trtllm-python-py3");
    expect(spec.cmd.slice(0, 2)).toEqual(["mpirun", "--allow-run-as-root"]);
    expect(spec.cmd.filter((a) => a === "/opt/tritonserver/bin/tritonserver")).toHaveLength(2);
    expect(spec.cmd).toContain("--model-repository=/llama3-trt/model-repo");
  });

  it("mounts the model repository, the engine and the weights read-only where the configs point (the engine is not copied)", () => {
    expect(spec.mounts).toEqual([
      { host: "/w/model-repo", container: "/llama3-trt/model-repo", readOnly: true },
      { host: "/w/engine", container: "/llama3-trt/engine", readOnly: true },
      { host: "/h/hub/models--meta-llama--Meta-Llama-3-8B-Instruct", container: "/llama3-trt/weights", readOnly: true },
    ]);
  });

  it("publishes the three ports on 127.0.0.1 by default, never on the host network (case 39)", () => {
    const body = createBody(spec, { "dev.llama3-trt.role": "server" }, { raiseMemlock: true });
    expect(body.HostConfig.PortBindings).toEqual({
      "8000/tcp": [{ HostIp: "127.0.0.1", HostPort: "8000" }],
      "8001/tcp": [{ HostIp: "127.0.0.1", HostPort: "8001" }],
      "8002/tcp": [{ HostIp: "127.0.0.1", HostPort: "8002" }],
    });
    expect(body.HostConfig).not.toHaveProperty("NetworkMode");
    expect(body.HostConfig.Init).toBe(true);
    expect(body.HostConfig.ShmSize).toBe(2 * 1024 ** 3);
    expect(body.HostConfig.DeviceRequests).toEqual([{ Driver: "", Count: -1, DeviceIDs: null, Capabilities: [["gpu"]], Options: {} }]);
    expect(body.Env).toEqual([]);
  });

  it("publishes on the address and ports the settings give", () => {
    const custom = serverContainerSpec({ ...defaults, host: "0.0.0.0", port: 9000, grpcPort: 9001, metricsPort: 9002 }, built);
    expect(custom.ports).toEqual([
      { container: 8000, host: 9000, hostIp: "0.0.0.0" },
      { container: 8001, host: 9001, hostIp: "0.0.0.0" },
      { container: 8002, host: 9002, hostIp: "0.0.0.0" },
    ]);
  });
});

describe("server URLs", () => {
  it("reaches a server published on every interface over loopback", () => {
    expect(serverUrls("0.0.0.0", { http: 8000, grpc: 8001, metrics: 8002 })).toEqual({
      http: "http://127.0.0.1:8000",
      grpc: "127.0.0.1:8001",
      metrics: "http://127.0.0.1:8002/metrics",
    });
    expect(serverUrls("10.0.0.5", { http: 1, grpc: 2, metrics: 3 }).http).toBe("http://10.0.0.5:1");
  });

  it("reads them from the ports the engine published, preferring IPv4", () => {
    const ports = [
      { container: 8000, hostIp: "::", host: 9000 },
      { container: 8000, hostIp: "0.0.0.0", host: 9000 },
      { container: 8001, hostIp: "0.0.0.0", host: 9001 },
      { container: 8002, hostIp: "0.0.0.0", host: 9002 },
    ];
    expect(containerUrls({ ports })?.http).toBe("http://127.0.0.1:9000");
    expect(containerUrls({ ports: [] })).toBeUndefined();
  });
});

describe("the port-in-use message", () => {
  it("names the port, the address, the holder when known, and the flag to change", () => {
    expect(portInUseMessage("127.0.0.1", 8000, "--port", "pid 999 python3")).toBe(
      "Port 8000 on 127.0.0.1 is in use (by pid 999 python3). Stop what uses it, or pass `--port` with a free port.",
    );
    expect(portInUseMessage("127.0.0.1", 8001, "--grpc-port")).toBe("Port 8001 on 127.0.0.1 is in use. Stop what uses it, or pass `--grpc-port` with a free port.");
    expect(portInUseMessage("127.0.0.1", 8000, "--port", "pid 4 docker-proxy")).toContain("(by a Docker container: see `docker ps`)");
  });
});
