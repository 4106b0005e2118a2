import { constants } from "node:fs";
import { open } from "node:fs/promises";
import { resolve } from "node:path";
import { UsageError } from "../../common/errors.ts";
import { renderConfigFile } from "../../config/init-template.ts";
import { resolveSettings } from "../../config/resolve.ts";
import type { CommandEnv } from "./command.ts";

/** Writes ./llama3-trt.yaml (or the --config path) with every setting, its default and a comment. */
export async function run(env: CommandEnv): Promise<void> {
  const path = resolve(env.cwd, env.globals.config ?? "llama3-trt.yaml");
  const force = env.options.force === true;
  // O_EXCL: never follow or clobber something already there unless --force was asked for.
  const flags = force ? constants.O_WRONLY | constants.O_CREAT | constants.O_TRUNC : constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL;
  let handle;
  try {
    handle = await open(path, flags, 0o644);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === "EEXIST") {
      throw new UsageError(`${path} already exists. Edit it, or pass \`--force\` to overwrite it with the defaults.`);
    }
    throw error;
  }
  try {
    await handle.writeFile(renderConfigFile());
  } finally {
    await handle.close();
  }
  // The file we just wrote must load: a cheap guard against a schema the template cannot express.
  resolveSettings({ flags: {}, env: {}, cwd: env.cwd, configPath: path });
  if (env.output.json) env.output.document({ written: path });
  else env.output.result(`Wrote ${path}. Edit it, then run \`llama3-trt doctor\`.`);
}
