import { NotImplementedError } from "../../common/errors.ts";
import { resolveSettings, type Resolved } from "../../config/resolve.ts";
import type { CommandContext } from "../context.ts";
import type { Output } from "../output.ts";

/** What a command module's `run` gets: the parsed command line, the output, the process's world. */
export interface CommandEnv extends CommandContext {
  readonly output: Output;
  readonly env: Readonly<Record<string, string | undefined>>;
  readonly cwd: string;
}

export type CommandRun = (env: CommandEnv) => Promise<void>;

/** Settings for this run (flags > env > file > defaults); warnings are printed, errors thrown (exit 2). */
export function settingsFor(env: CommandEnv): Resolved {
  const flags = env.globals.workdir === undefined ? env.flags : { ...env.flags, workdir: env.globals.workdir };
  const resolved = resolveSettings({ flags, env: env.env, cwd: env.cwd, configPath: env.globals.config });
  for (const warning of resolved.warnings) env.output.warn(warning);
  return resolved;
}

/**
 * A command that a later version of the pipeline fills in. It still checks the settings (so a
 * bad config is reported the same way everywhere), then says plainly that it does nothing yet.
 */
export function notYet(env: CommandEnv, arrivesWith: string): never {
  settingsFor(env);
  throw new NotImplementedError(
    `\`llama3-trt ${env.command}\` is not available yet in this version: it arrives with ${arrivesWith}. Nothing was done.`,
  );
}
