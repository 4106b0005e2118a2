/** The pipeline's step ids, in run order. Fixed by the contract: scripts and log file names use them. */
export const stepIds = [
  "trtllm-repo",
  "backend-repo",
  "weights",
  "build-image",
  "checkpoint",
  "engine",
  "model-repo",
] as const;

export type StepId = (typeof stepIds)[number];
