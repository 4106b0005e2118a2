import { Session } from "../../pipeline/session.ts";
import { stopServers } from "../../server/server.ts";
import { gatewayLogFile, stopGateway } from "../../gateway/process.ts";
import { version } from "../version.ts";
import { type CommandEnv, settingsFor } from "./command.ts";

/**
 * Stops and removes the server of this workdir, wherever `serve` was started from, and the
 * containers a killed run left (orphans: their owner is dead, so no lock is needed to end them).
 */
export async function run(env: CommandEnv): Promise<void> {
  const { settings } = settingsFor(env);
  const session = new Session({ settings, env: env.env, signal: new AbortController().signal, toolVersion: version });
  // The gateway first: while Triton stops, it would answer 503s to whoever still asks.
  const gateway = await stopGateway(session.paths);
  const stopped = await stopServers(session.docker, session.paths);
  const reaped: string[] = [];
  await session.reapOrphans((message) => {
    reaped.push(message);
    env.output.warn(message);
  });
  if (env.output.json) env.output.document({ stopped, gateway: gateway ?? null, reaped });
  else {
    const lines = [stopped.length === 0 ? "No server running for this workdir." : `Stopped and removed ${stopped.join(", ")}. Its log is in ${session.paths.log("server")}.`];
    if (gateway) lines.push(`Stopped the OpenAI ${gateway}. Its log is in ${gatewayLogFile(session.paths)}.`);
    env.output.result(lines.join("\n"));
  }
}
