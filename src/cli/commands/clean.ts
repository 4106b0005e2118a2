import { type CommandEnv, notYet } from "./command.ts";

export async function run(env: CommandEnv): Promise<void> {
  notYet(env, "the pipeline (issue #3)");
}
