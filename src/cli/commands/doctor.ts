import { DockerodeClient } from "../../docker/dockerode-client.ts";
import { runChecks, type Status } from "../../doctor/checks.ts";
import { type CommandEnv, settingsFor } from "./command.ts";

/** Checks the host and says, per item, ok / warning / blocker with the fix. Exit 1 on any blocker. */
export async function run(env: CommandEnv): Promise<void> {
  const { settings } = settingsFor(env);
  const checks = await runChecks({ settings, env: env.env, docker: new DockerodeClient(env.env), signal: new AbortController().signal });
  const blockers = checks.filter((c) => c.status === "blocker");
  if (env.output.json) {
    env.output.document({ ok: blockers.length === 0, checks });
  } else {
    const colour: Record<Status, "green" | "yellow" | "red" | "dim"> = { ok: "green", warning: "yellow", blocker: "red", skipped: "dim" };
    const lines = checks.flatMap((c) => [
      `${env.output.paint(c.status.padEnd(8), colour[c.status])} ${c.name}: ${c.detail}`,
      ...(c.fix && c.status !== "ok" ? [`         fix: ${c.fix}`] : []),
    ]);
    env.output.result(lines.join("\n"));
  }
  if (blockers.length > 0) {
    // The report above is the answer (one JSON document under --json): only the exit code remains.
    if (!env.output.json) env.output.error(`${blockers.length} blocker${blockers.length === 1 ? "" : "s"}: ${blockers.map((b) => b.name).join(", ")}`);
    process.exitCode = 1;
  }
}
