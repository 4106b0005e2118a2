/**
 * The command line tensorrtllm_backend v0.8.0's scripts/launch_triton_server.py builds, run as
 * the container's main process instead of through the script. The script starts `mpirun` with
 * Popen and exits at once, so as a container command it would end the container (and as a
 * `docker exec` it would outlive anything watching it); run directly, the container's life is the
 * server's life, and `docker stop` reaches mpirun, which passes the signal to every rank.
 */

export const tritonserverPath = "/opt/tritonserver/bin/tritonserver";

/** Ports inside the container (launch_triton_server.py's defaults); the host side is --port & co. */
export const containerPorts = { http: 8000, grpc: 8001, metrics: 8002 } as const;

export interface LaunchOptions {
  /** The engine's tp × pp: one tritonserver rank per GPU of the engine. */
  readonly worldSize: number;
  readonly modelRepo: string;
  readonly tritonserver?: string;
  readonly ports?: { readonly http: number; readonly grpc: number; readonly metrics: number };
  readonly tensorrtLlmModelName?: string;
}

/**
 * `mpirun --allow-run-as-root` and, for each rank i, `-n 1 tritonserver --model-repository=…`
 * (ranks > 0: `--model-control-mode=explicit --load-model=tensorrt_llm`, they only host their
 * shard of the engine), the three ports, `--disable-auto-complete-config` and
 * `--backend-config=python,shm-region-prefix-name=prefix<i>_`, each app context closed by `:`,
 * exactly as get_cmd() of v0.8.0 does without `--log`. No `--http-address`: inside the container
 * Triton must listen on all interfaces for the published port to reach it; what is exposed on
 * the host is decided by the port binding (`--host`).
 */
export function tritonLaunchArgv(o: LaunchOptions): string[] {
  if (!Number.isInteger(o.worldSize) || o.worldSize < 1) throw new Error(`world size must be a positive integer, got ${o.worldSize}`);
  const ports = o.ports ?? containerPorts;
  const server = o.tritonserver ?? tritonserverPath;
  const argv = ["mpirun", "--allow-run-as-root"];
  for (let rank = 0; rank < o.worldSize; rank++) {
    argv.push("-n", "1", server, `--model-repository=${o.modelRepo}`);
    if (rank !== 0) argv.push("--model-control-mode=explicit", `--load-model=${o.tensorrtLlmModelName ?? "tensorrt_llm"}`);
    argv.push(
      `--grpc-port=${ports.grpc}`,
      `--http-port=${ports.http}`,
      `--metrics-port=${ports.metrics}`,
      "--disable-auto-complete-config",
      `--backend-config=python,shm-region-prefix-name=prefix${rank}_`,
      ":",
    );
  }
  return argv;
}
