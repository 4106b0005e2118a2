import { version } from "../version.ts";
import { describeAssessment } from "../../model/assessment.ts";
import { planDocument, renderPlan } from "../pipeline-view.ts";
import { Session } from "../../pipeline/session.ts";
import { type CommandEnv, settingsFor } from "./command.ts";
import type { ExportFlags } from "./export.ts";

/** Prints the pipeline without running anything. `build --dry-run` is the same call. */
export async function run(env: CommandEnv): Promise<void> {
  const options = env.options as unknown as ExportFlags & { target?: "local" | "kubernetes" };
  // What `export kubernetes` would write, from this same plan: its dry run.
  if (options.target === "kubernetes") return (await import("./export.ts")).exportKubernetes(env, { ...options, dryRun: true });
  const { settings } = settingsFor(env);
  await printPlan(env, new Session({ settings, env: env.env, signal: new AbortController().signal, toolVersion: version, hubWarnings: (message) => env.output.warn(message) }));
}

export async function printPlan(env: CommandEnv, session: Session): Promise<void> {
  const statuses = await (await session.pipeline()).evaluate();
  // No container for a plan: the GPUs are the --gpu profile's or the host's nvidia-smi's.
  const assessment = await session.modelAssessment({ probe: false });
  if (env.output.json) env.output.document(planDocument(session.paths.root, statuses, assessment));
  else env.output.result([renderPlan(session.paths.root, statuses, env.output), "", ...describeAssessment(assessment)].join("\n"));
  if (assessment.refusals.length > 0) {
    // The plan above says why; `build` would stop here with exit 2 before anything runs.
    if (!env.output.json) env.output.error(`\`llama3-trt build\` would refuse this (${assessment.refusals.map((r) => r.field).join(", ")}): see above.`);
    process.exitCode = 2;
  }
}
