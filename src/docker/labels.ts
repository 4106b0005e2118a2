/**
 * Every container llama3-trt starts carries these labels. `stop`, `clean`, the interrupt
 * cleanup, the reap of a dead run's containers and the tests' leak checks all find them by label.
 */
export const labelKeys = {
  /** Marks any container of ours. */
  tool: "dev.llama3-trt",
  /** Hash of the workdir path: which workdir a container belongs to. */
  workdir: "dev.llama3-trt.workdir",
  /** One id per CLI invocation: what this run must clean up on Ctrl-C. */
  run: "dev.llama3-trt.run",
  /** The pipeline step id, or `server` for the Triton container of `serve`. */
  role: "dev.llama3-trt.role",
  /** The CLI process and host that started it: a dead pid here means an orphan. */
  pid: "dev.llama3-trt.pid",
  host: "dev.llama3-trt.host",
} as const;

export interface ContainerOwner {
  readonly workdirId: string;
  readonly runId: string;
  readonly role: string;
  readonly pid: number;
  readonly host: string;
}

export function ownerLabels(owner: ContainerOwner): Record<string, string> {
  return {
    [labelKeys.tool]: "1",
    [labelKeys.workdir]: owner.workdirId,
    [labelKeys.run]: owner.runId,
    [labelKeys.role]: owner.role,
    [labelKeys.pid]: String(owner.pid),
    [labelKeys.host]: owner.host,
  };
}
