import { readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { parseGpuQuery } from "../../../src/doctor/nvidia-smi.ts";

describe("nvidia-smi --query-gpu", () => {
  it("parses the output captured on an H100 80GB", () => {
    const csv = readFileSync(new URL("../../fixtures/nvidia-smi/h100-80gb-query.csv", import.meta.url), "utf8");
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
