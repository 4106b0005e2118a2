import { describe, expect, it } from "vitest";
import { createBody, deviceRequests, type ContainerSpec } from "../../../src/docker/container-spec.ts";

const spec: ContainerSpec = {
  image: "llama3-trt/tensorrt-llm:0.8.0",
  cmd: ["trtllm-build", "--checkpoint_dir", "/c"],
  workingDir: "/llama3-trt/output",
  mounts: [
    { host: "/w/checkpoint", container: "/llama3-trt/checkpoint", readOnly: true },
    { host: "/w/engine.tmp", container: "/llama3-trt/output", readOnly: false },
  ],
  gpus: "all",
};

describe("the GPU request (case 27)", () => {
  it("--gpus all is what `docker run --gpus all` sends: Count -1, capability gpu", () => {
    expect(deviceRequests("all")).toEqual([{ Driver: "", Count: -1, DeviceIDs: null, Capabilities: [["gpu"]], Options: {} }]);
  });

  it("--gpus 0,1 names the devices and sets no Count (the daemon refuses both)", () => {
    const [request] = deviceRequests(["0", "1"]) as [Record<string, unknown>];
    expect(request).toEqual({ Driver: "", DeviceIDs: ["0", "1"], Capabilities: [["gpu"]], Options: {} });
    expect(request).not.toHaveProperty("Count");
  });

  it("--gpus none asks for no device", () => {
    expect(deviceRequests("none")).toBeUndefined();
    expect(createBody({ ...spec, gpus: "none" }, {}, { raiseMemlock: true }).HostConfig.DeviceRequests).toBeUndefined();
  });
});

describe("the create body (case 27)", () => {
  it("is exactly this for --gpus all: nothing more, nothing less", () => {
    expect(createBody({ image: "i", cmd: ["a"], workingDir: "/w", mounts: [], gpus: "all" }, { l: "1" }, { raiseMemlock: true })).toEqual({
      Image: "i",
      Cmd: ["a"],
      WorkingDir: "/w",
      Env: [],
      Labels: { l: "1" },
      // docker stop's grace period before SIGKILL (case 28's bound).
      StopTimeout: 10,
      ExposedPorts: {},
      HostConfig: {
        Mounts: [],
        DeviceRequests: [{ Driver: "", Count: -1, DeviceIDs: null, Capabilities: [["gpu"]], Options: {} }],
        ShmSize: 2147483648,
        Ulimits: [
          { Name: "memlock", Soft: -1, Hard: -1 },
          { Name: "stack", Soft: 67108864, Hard: 67108864 },
        ],
        Init: true,
        PortBindings: {},
        AutoRemove: false,
      },
    });
  });

  const body = createBody(spec, { "dev.llama3-trt.run": "r1" }, { raiseMemlock: true });

  it("carries NVIDIA's container settings for TensorRT-LLM", () => {
    expect(body.HostConfig.ShmSize).toBe(2147483648);
    expect(body.HostConfig.Ulimits).toEqual([
      { Name: "memlock", Soft: -1, Hard: -1 },
      { Name: "stack", Soft: 67108864, Hard: 67108864 },
    ]);
    // tini as PID 1 passes signals on, so a stop really stops the tool (reliability D4).
    expect(body.HostConfig.Init).toBe(true);
  });

  it("drops memlock where the engine cannot raise it (rootless Docker)", () => {
    expect(createBody(spec, {}, { raiseMemlock: false }).HostConfig.Ulimits).toEqual([{ Name: "stack", Soft: 67108864, Hard: 67108864 }]);
  });

  it("mounts read-only what it only reads, and labels the container", () => {
    expect(body.HostConfig.Mounts).toEqual([
      { Type: "bind", Source: "/w/checkpoint", Target: "/llama3-trt/checkpoint", ReadOnly: true },
      { Type: "bind", Source: "/w/engine.tmp", Target: "/llama3-trt/output", ReadOnly: false },
    ]);
    expect(body.Labels).toEqual({ "dev.llama3-trt.run": "r1" });
    expect(body.Cmd).toEqual(spec.cmd);
    expect(body.WorkingDir).toBe("/llama3-trt/output");
  });

  it("publishes ports on the given address only", () => {
    const served = createBody({ ...spec, ports: [{ container: 8000, host: 18000, hostIp: "127.0.0.1" }] }, {}, { raiseMemlock: true });
    expect(served.HostConfig.PortBindings).toEqual({ "8000/tcp": [{ HostIp: "127.0.0.1", HostPort: "18000" }] });
    expect(served.ExposedPorts).toEqual({ "8000/tcp": {} });
    expect(served.HostConfig).not.toHaveProperty("NetworkMode");
  });

  it("never puts a Hugging Face token into the environment", () => {
    expect(body.Env).toEqual([]);
  });
});
