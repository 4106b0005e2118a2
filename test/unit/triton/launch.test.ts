import { describe, expect, it } from "vitest";
import { tritonLaunchArgv } from "../../../src/triton/launch.ts";

describe("the Triton launch command line (launch_triton_server.py v0.8.0 without --log)", () => {
  it("one rank: mpirun with one tritonserver app context, closed by ':'", () => {
    expect(tritonLaunchArgv({ worldSize: 1, modelRepo: "/llama3-trt/model-repo" })).toEqual([
      "mpirun",
      "--allow-run-as-root",
      "-n",
      "1",
      "/opt/tritonserver/bin/tritonserver",
      "--model-repository=/llama3-trt/model-repo",
      "--grpc-port=8001",
      "--http-port=8000",
      "--metrics-port=8002",
      "--disable-auto-complete-config",
      "--backend-config=python,shm-region-prefix-name=prefix0_",
      ":",
    ]);
  });

  it("tp 2: rank 1 loads only tensorrt_llm under explicit model control, with its own shm prefix", () => {
    const argv = tritonLaunchArgv({ worldSize: 2, modelRepo: "/r" });
    const contexts = argv.slice(2).join(" ").split(" : ").map((c) => c.replace(/ :$/, ""));
    expect(contexts).toEqual([
      "-n 1 /opt/tritonserver/bin/tritonserver --model-repository=/r --grpc-port=8001 --http-port=8000 --metrics-port=8002 --disable-auto-complete-config --backend-config=python,shm-region-prefix-name=prefix0_",
      "-n 1 /opt/tritonserver/bin/tritonserver --model-repository=/r --model-control-mode=explicit --load-model=tensorrt_llm --grpc-port=8001 --http-port=8000 --metrics-port=8002 --disable-auto-complete-config --backend-config=python,shm-region-prefix-name=prefix1_",
    ]);
    expect(argv.at(-1)).toBe(":");
  });

  it("never binds Triton to an address inside the container: the host binding decides exposure", () => {
    expect(tritonLaunchArgv({ worldSize: 8, modelRepo: "/r" }).some((a) => a.startsWith("--http-address"))).toBe(false);
    expect(tritonLaunchArgv({ worldSize: 8, modelRepo: "/r" }).filter((a) => a === "-n")).toHaveLength(8);
  });

  it("refuses a world size that is not a positive integer", () => {
    expect(() => tritonLaunchArgv({ worldSize: 0, modelRepo: "/r" })).toThrow("world size");
    expect(() => tritonLaunchArgv({ worldSize: 1.5, modelRepo: "/r" })).toThrow("world size");
  });
});
