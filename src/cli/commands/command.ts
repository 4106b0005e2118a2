import { NotImplementedError } from "../../common/errors.ts";
import { redactor } from "../../common/redact.ts";
import { resolveSettings, type Resolved } from "../../config/resolve.ts";
import type { CommandContext } from "../context.ts";
import type { Output } from "../output.ts";
import type { SelfCommand } from "../../gateway/process.ts";

/** What a command module's `run` gets: the parsed command line, the output, the process's world. */
export interface CommandEnv extends CommandContext {
  readonly output: Output;
  readonly env: Readonly<Record<string, string | undefined>>;
  readonly cwd: string;
  /** This CLI's own command line (node, its options, the entry script), to start it again. */
  readonly self: SelfCommand;
}

export type CommandRun = (env: CommandEnv) => Promise<void>;

/** Settings for this run (flags > env > file > defaults); warnings are printed, errors thrown (exit 2). */
export function settingsFor(env: CommandEnv): Resolved {
  const flags = env.globals.workdir === undefined ? env.flags : { ...env.flags, workdir: env.globals.workdir };
  const resolved = resolveSettings({ flags, env: env.env, cwd: env.cwd, configPath: env.globals.config });
  for (const warning of resolved.warnings) env.output.warn(warning);
  // The API key is a secret from here on: every sink the redactor guards drops it.
  if (resolved.settings.apiKey !== null) redactor.add(resolved.settings.apiKey);
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
