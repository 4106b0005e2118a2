import { version } from "../version.ts";
import { planDocument, renderPlan } from "../pipeline-view.ts";
import { Session } from "../../pipeline/session.ts";
import { type CommandEnv, settingsFor } from "./command.ts";

/** Prints the pipeline without running anything. `build --dry-run` is the same call. */
export async function run(env: CommandEnv): Promise<void> {
  const { settings } = settingsFor(env);
  await printPlan(env, new Session({ settings, env: env.env, signal: new AbortController().signal, toolVersion: version }));
}

export async function printPlan(env: CommandEnv, session: Session): Promise<void> {
  const statuses = await (await session.pipeline()).evaluate();
  if (env.output.json) env.output.document(planDocument(session.paths.root, statuses));
  else env.output.result(renderPlan(session.paths.root, statuses, env.output));
}
