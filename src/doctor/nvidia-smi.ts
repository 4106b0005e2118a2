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

/**
 * Parses the CSV `nvidiaSmiQuery` prints: with its header line and `81559 MiB` units, or without
 * either (`--format=csv,noheader,nounits`, as some scripts capture it).
 */
export function parseGpuQuery(csv: string): Gpu[] {
  const lines = csv.trim().split(/\r?\n/);
  const first = lines[0] ?? "";
  const rows = first.startsWith("index") ? lines.slice(1) : /^\d+\s*,/.test(first) ? lines : undefined;
  if (rows === undefined) throw new Error(`unexpected nvidia-smi output: ${first || "(empty)"}`);
  return rows
    .filter((row) => row.trim() !== "")
    .map((row) => {
      const cells = row.split(",").map((cell) => cell.trim());
      if (cells.length < 8) throw new Error(`unexpected nvidia-smi output: ${row}`);
      const [index, name, uuid, total, , free, cc, driver] = cells;
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

/** The GPUs of `list` that `--gpus` gives the containers: all, or those named by index or UUID. */
export function chosenGpus(list: readonly Gpu[], gpus: "all" | "none" | readonly string[]): Gpu[] {
  if (gpus === "none") return [];
  return Array.isArray(gpus) ? list.filter((g) => gpus.includes(String(g.index)) || gpus.includes(g.uuid)) : [...list];
}

/** The host's `nvidia-smi`, without a container (doctor, plan): no shell, a timeout that kills. */
export async function hostGpus(signal: AbortSignal): Promise<Gpu[]> {
  // execa, loaded only here: stderr in the error's message.
  const { execa } = await import("execa");
  const { stdout } = await execa("nvidia-smi", nvidiaSmiQuery, { timeout: 15_000, cancelSignal: signal });
  return parseGpuQuery(stdout);
}
