import { Session } from "../../pipeline/session.ts";
import { writableByOthers } from "../../pipeline/workdir.ts";
import { handleInterrupts } from "../interrupts.ts";
import { runWithProgress } from "../progress.ts";
import { version } from "../version.ts";
import type { StepId } from "../../pipeline/step-ids.ts";
import { describeAssessment } from "../../model/assessment.ts";
import { modelDocument } from "../pipeline-view.ts";
import { printPlan } from "./plan.ts";
import { type CommandEnv, settingsFor } from "./command.ts";

/** The steps whose preflight judges the model (pipeline/model-check.ts). */
const modelSteps = new Set<StepId>(["weights", "checkpoint", "engine"]);

export async function run(env: CommandEnv): Promise<void> {
  const { settings } = settingsFor(env);
  const options = env.options as { only?: StepId; from?: StepId; force?: true | StepId; dryRun?: boolean; verify?: boolean };
  let session: Session | undefined;
  using interrupts = handleInterrupts(env.output, async () => {
    await session?.killRunContainers().catch(() => {});
  });
  session = new Session({
    settings,
    env: env.env,
    signal: interrupts.signal,
    toolVersion: version,
    deepVerify: options.verify === true,
    hubWarnings: (message) => env.output.warn(message),
  });
  if (options.dryRun) return printPlan(env, session);

  await using lock = await session.lock("build");
  if (lock.tookOverFrom) {
    env.output.info(`took over the workdir from a dead run (pid ${lock.tookOverFrom.pid}, ${lock.tookOverFrom.command})`);
  }
  await session.reapOrphans((message) => env.output.warn(message));
  for (const dir of await writableByOthers(session.paths)) {
    env.output.warn(`${dir} is writable by every user of this host: anyone could change what llama3-trt writes and later reads there. Run \`chmod o-w ${dir}\`.`);
  }
  const pipeline = await session.pipeline();
  // The pre-flight checks of the steps that will run, the model's included (a refusal is exit 2
  // here, before any step runs).
  const executors = await pipeline.prepare({ only: options.only, from: options.from, force: options.force });
  // What the model will get, before the GPU work: only when a step that reads the model will run.
  const judged = executors.some((e) => e.willRun && modelSteps.has(e.step.id)) ? await session.modelAssessment({ probe: true }) : undefined;
  if (judged) {
    for (const line of describeAssessment(judged, { findings: false })) env.output.info(line);
    for (const warning of judged.warnings) env.output.warn(warning.message);
    for (const note of judged.notes) env.output.info(`note: ${note.message}`);
  }
  const outcomes = await runWithProgress(executors, env.output);
  if (env.output.json) {
    env.output.document({ workdir: session.paths.root, steps: outcomes, ...(judged ? { model: modelDocument(judged), memory: judged.memory } : {}) });
  } else {
    const ran = outcomes.filter((o) => o.action === "ran").length;
    env.output.result(ran === 0 ? "Everything is up to date." : `Built ${ran} step${ran === 1 ? "" : "s"} in ${session.paths.root}. Next: \`llama3-trt serve\`.`);
  }
}
