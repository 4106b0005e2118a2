import { readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { parseGpuQuery } from "../../../src/doctor/nvidia-smi.ts";

describe("nvidia-smi --query-gpu", () => {
  it("parses the output captured on an H100 80GB", () => {
    const csv = readFileSync(new URL("../../fixtures/nvidia-smi/h100-80gb/nvidia-smi-query.csv", import.meta.url), "utf8");
    expect(parseGpuQuery(csv)).toEqual([
      {
        index: 0,
        name: "NVIDIA H100 80GB HBM3",
        uuid: "GPU-71c1da3c-d93a-6212-a28d-d23703b3c6a5",
        memoryTotalMiB: 81559,
        memoryFreeMiB: 81079,
        computeCapability: 9,
        driverVersion: "580.159.04",
      },
    ]);
  });

  it("refuses output that is not the query's", () => {
    expect(() => parseGpuQuery("NVIDIA-SMI has failed because it couldn't communicate with the NVIDIA driver.")).toThrow("unexpected nvidia-smi output");
  });
});

describe("nvidia-smi captures of test/fixtures/nvidia-smi", () => {
  const fixture = (name: string) => readFileSync(new URL(`../../fixtures/nvidia-smi/${name}`, import.meta.url), "utf8");
  const h200 = {
    index: 0,
    name: "NVIDIA H200",
    uuid: "GPU-9a836c83-0479-7bfe-8b58-2a3141c5388d",
    memoryTotalMiB: 143771,
    memoryFreeMiB: 143156,
    computeCapability: 9,
    driverVersion: "580.159.04",
  };

  it("parses the H200 141GB capture, with and without header and units", () => {
    expect(parseGpuQuery(fixture("h200-141gb/nvidia-smi-query.csv"))).toEqual([h200]);
    expect(parseGpuQuery(fixture("h200-141gb/nvidia-smi-query-noheader-nounits.csv"))).toEqual([h200]);
  });

  it("the GPU profiles of the captured cards carry their memory.total", async () => {
    const { gpuProfiles } = await import("../../../src/model/gpu-profiles.ts");
    expect(gpuProfiles["h100-80gb"]).toMatchObject({ name: "NVIDIA H100 80GB HBM3", memoryMiB: parseGpuQuery(fixture("h100-80gb/nvidia-smi-query.csv"))[0]?.memoryTotalMiB, captured: true });
    expect(gpuProfiles["h200-141gb"]).toMatchObject({ name: "NVIDIA H200", memoryMiB: h200.memoryTotalMiB, captured: true });
  });

  it("picks the GPUs --gpus names, by index or UUID", async () => {
    const { chosenGpus } = await import("../../../src/doctor/nvidia-smi.ts");
    const two = [...parseGpuQuery(fixture("h200-141gb/nvidia-smi-query.csv")), { ...h200, index: 1, uuid: "GPU-1" }];
    expect(chosenGpus(two, "all").map((g) => g.index)).toEqual([0, 1]);
    expect(chosenGpus(two, ["1"]).map((g) => g.index)).toEqual([1]);
    expect(chosenGpus(two, [h200.uuid]).map((g) => g.index)).toEqual([0]);
    expect(chosenGpus(two, "none")).toEqual([]);
  });

  it("refuses a row that is cut short", () => {
    expect(() => parseGpuQuery("0, NVIDIA H200, GPU-9a83")).toThrow("unexpected nvidia-smi output: 0, NVIDIA H200, GPU-9a83");
  });
});
