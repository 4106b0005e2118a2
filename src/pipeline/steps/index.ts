import type { Step } from "../step.ts";
import { buildImageStep } from "./build-image.ts";
import { backendRepoStep, trtllmRepoStep } from "./git-repo.ts";
import { checkpointStep } from "./checkpoint.ts";
import { engineStep } from "./engine.ts";
import { modelRepoStep } from "./model-repo.ts";
import { weightsStep } from "./weights/index.ts";

/** The steps in run order; ids fixed by the contract. */
export const allSteps: readonly Step[] = [
  trtllmRepoStep,
  backendRepoStep,
  weightsStep,
  buildImageStep,
  checkpointStep,
  engineStep,
  modelRepoStep,
];
