import { Session } from "../../pipeline/session.ts";
import { stopServers } from "../../server/server.ts";
import { gatewayLogFile } from "../../gateway/process.ts";
import { version } from "../version.ts";
import { type CommandEnv, settingsFor } from "./command.ts";

/**
 * Stops and removes the server of this workdir, wherever `serve` was started from, and the
 * containers a killed run left (orphans: their owner is dead, so no lock is needed to end them).
 */
export async function run(env: CommandEnv): Promise<void> {
  const { settings } = settingsFor(env);
  const session = new Session({ settings, env: env.env, signal: new AbortController().signal, toolVersion: version });
  const stopped = await stopServers(session.docker, session.paths);
  const reaped: string[] = [];
  await session.reapOrphans((message) => {
    reaped.push(message);
    env.output.warn(message);
  });
  if (env.output.json) env.output.document({ stopped, reaped });
  else if (stopped.length === 0) env.output.result("No server running for this workdir.");
  else {
    const gatewayLog = stopped.some((s) => s.startsWith("gateway ")) ? ` and ${gatewayLogFile(session.paths)}` : "";
    env.output.result(`Stopped and removed ${stopped.join(", ")}. The logs are in ${session.paths.log("server")}${gatewayLog}.`);
  }
}
