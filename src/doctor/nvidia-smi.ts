/** One GPU as `nvidia-smi --query-gpu=… --format=csv` reports it. */
export interface Gpu {
  readonly index: number;
  readonly name: string;
  readonly uuid: string;
  readonly memoryTotalMiB: number;
  readonly memoryFreeMiB: number;
  readonly computeCapability: number;
  readonly driverVersion: string;
}

export const nvidiaSmiQuery = [
  "--query-gpu=index,name,uuid,memory.total,memory.used,memory.free,compute_cap,driver_version",
  "--format=csv",
];

/** Parses the CSV `nvidiaSmiQuery` prints (header line, `81559 MiB` units). */
export function parseGpuQuery(csv: string): Gpu[] {
  const [header, ...rows] = csv.trim().split(/\r?\n/);
  if (!header?.startsWith("index")) throw new Error(`unexpected nvidia-smi output: ${header ?? "(empty)"}`);
  return rows
    .filter((row) => row.trim() !== "")
    .map((row) => {
      const [index, name, uuid, total, , free, cc, driver] = row.split(",").map((cell) => cell.trim());
      return {
        index: Number(index),
        name: name ?? "",
        uuid: uuid ?? "",
        memoryTotalMiB: parseInt(total ?? "0", 10),
        memoryFreeMiB: parseInt(free ?? "0", 10),
        computeCapability: Number(cc),
        driverVersion: driver ?? "",
      };
    });
}
