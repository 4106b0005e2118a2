import { type CommandEnv, notYet } from "./command.ts";

export async function run(env: CommandEnv): Promise<void> {
  notYet(env, "serving (issue #5)");
}
