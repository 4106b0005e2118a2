import { rm } from "node:fs/promises";
import { FailedError } from "../../common/errors.ts";
import { labelKeys } from "../../docker/labels.ts";
import { repoFolder } from "../../hub/cache.ts";
import { Session } from "../../pipeline/session.ts";
import { removeStaleStaging } from "../../pipeline/staging.ts";
import { version } from "../version.ts";
import { type CommandEnv, settingsFor } from "./command.ts";

/** Removes what `build` made in the workdir; the Hugging Face cache copy too with --all. */
export async function run(env: CommandEnv): Promise<void> {
  const { settings } = settingsFor(env);
  const all = env.options.all === true;
  const session = new Session({ settings, env: env.env, signal: new AbortController().signal, toolVersion: version });
  await using _lock = await session.lock("clean");
  const p = session.paths;
  const servers = await session.docker.listContainers({ [labelKeys.workdir]: p.id, [labelKeys.role]: "server" });
  if (servers.some((c) => c.state === "running")) {
    throw new FailedError("The server of this workdir is running on these files. Run `llama3-trt stop` first.");
  }
  await session.reapOrphans((message) => env.output.warn(message));
  const removed: string[] = [];
  for (const dir of [p.repos, p.checkpoint, p.engine, p.modelRepo, p.imageContext, p.logs, p.state]) {
    await removeStaleStaging(dir);
    await rm(dir, { recursive: true, force: true });
    removed.push(dir);
  }
  if (all && settings.modelDir === null) {
    const cached = repoFolder(session.clients.hub.hub.cacheDir, settings.model);
    await rm(cached, { recursive: true, force: true });
    removed.push(cached);
  }
  if (env.output.json) env.output.document({ removed });
  else {
    env.output.result(
      `Removed the built outputs in ${p.root}${all ? ` and ${settings.model} from the Hugging Face cache` : " (the Hugging Face cache is kept; `clean --all` removes it too)"}.`,
    );
  }
}
