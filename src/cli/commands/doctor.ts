import { type Check, modelChecks, runChecks, type Status } from "../../doctor/checks.ts";
import { Session } from "../../pipeline/session.ts";
import { waitFor } from "../spinner.ts";
import { version } from "../version.ts";
import { type CommandEnv, settingsFor } from "./command.ts";

/** Checks the host and says, per item, ok / warning / blocker with the fix. Exit 1 on any blocker. */
export async function run(env: CommandEnv): Promise<void> {
  const { settings } = settingsFor(env);
  const signal = new AbortController().signal;
  const session = new Session({ settings, env: env.env, signal, toolVersion: version, deepVerify: env.options.verify === true, hubWarnings: (message) => env.output.warn(message) });
  const waiting = await waitFor(env.output, "checking Docker, the NVIDIA runtime, GPUs, the Hugging Face token and access, disk, ports, the model and its memory");
  let checks: Check[];
  try {
    checks = await runChecks({ settings, clients: session.clients, signal });
    // Will this model fit, and how well: from its own files, on this host's GPUs (or --gpu).
    checks.push(...(await modelChecks(() => session.modelAssessment({ probe: false }))));
    if (env.options.verify === true) checks.push(await verifyWeights(session));
  } finally {
    waiting.stop();
  }
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

/**
 * `doctor --verify`: re-hashes the weights the workdir's build used, every byte (reliability
 * case 7b), with the weights step's own check: a blob changed on disk is a blocker.
 */
async function verifyWeights(session: Session): Promise<Check> {
  const name = "Weights";
  try {
    const weights = (await (await session.pipeline()).evaluate()).find((s) => s.id === "weights");
    if (!weights || weights.state === "pending") return { name, status: "skipped", detail: "not downloaded yet: nothing to verify" };
    if (weights.state === "stale") {
      return { name, status: "blocker", detail: weights.reason, fix: "`llama3-trt build --verify` fetches again what does not match" };
    }
    const files = weights.work.kind === "weights" ? weights.work.weights.files.length : 0;
    return { name, status: "ok", detail: `${files} files read back: each matches its hash` };
  } catch (error) {
    return { name, status: "blocker", detail: error instanceof Error ? error.message : String(error) };
  }
}
