import { readFile } from "node:fs/promises";
import { FailedError, InterruptedError } from "../../common/errors.ts";
import { Session } from "../../pipeline/session.ts";
import { serversOf } from "../../server/server.ts";
import { version } from "../version.ts";
import { type CommandEnv, settingsFor } from "./command.ts";

/**
 * The server's log: from its container while there is one (`-f` follows it until it stops or
 * Ctrl-C), else the copy `stop` or a failed start kept in logs/server.log.
 */
export async function run(env: CommandEnv): Promise<void> {
  const { settings } = settingsFor(env);
  const follow = env.options.follow === true;
  // Ctrl-C is how one leaves `logs -f`: it ends the follow quietly (exit 130), nothing to stop.
  const interrupted = new AbortController();
  const onSignal = () => interrupted.abort();
  process.once("SIGINT", onSignal);
  process.once("SIGTERM", onSignal);
  using _signals = { [Symbol.dispose]: () => void (process.off("SIGINT", onSignal), process.off("SIGTERM", onSignal)) };
  const session = new Session({ settings, env: env.env, signal: interrupted.signal, toolVersion: version });
  const out = env.output;
  const [server] = await serversOf(session.docker, session.paths);
  const lines: string[] = [];
  const emit = (line: string) => (out.json ? lines.push(line) : out.result(line));
  if (server) {
    await session.docker.containerLogs(server.id, { follow: follow && !out.json, signal: interrupted.signal, onLine: emit });
    if (interrupted.signal.aborted) throw new InterruptedError("interrupted");
    if (out.json) out.document({ container: server.name, state: server.state, lines });
    return;
  }
  const file = session.paths.log("server");
  const text = await readFile(file, "utf8").catch(() => undefined);
  if (text === undefined) {
    throw new FailedError(`No server log for ${session.paths.root}: the server was never started here. Start it with \`llama3-trt serve\`.`);
  }
  if (follow) out.info(`(the server is not running; this is the log of its last run, from ${file})`);
  for (const line of text.replace(/\n$/, "").split("\n")) emit(line);
  if (out.json) out.document({ container: null, file, lines });
}
