import { open, readFile } from "node:fs/promises";
import { findGateway, gatewayLogFile } from "../../gateway/process.ts";
import type { Output } from "../output.ts";
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
  // Awaited here: the Ctrl-C handler above must outlive the follow.
  if (env.options.gateway === true) return await gatewayLogs(session, follow, interrupted.signal, out);
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

/**
 * The gateway's log (logs/gateway.log, which its process writes itself); `-f` follows it while
 * the gateway runs.
 */
async function gatewayLogs(session: Session, follow: boolean, signal: AbortSignal, out: Output): Promise<void> {
  const file = gatewayLogFile(session.paths);
  const text = await readFile(file, "utf8").catch(() => undefined);
  if (text === undefined) {
    throw new FailedError(`No gateway log for ${session.paths.root}: the gateway was never started here. \`llama3-trt serve\` starts it (unless --openai-port is 0).`);
  }
  const lines = text === "" ? [] : text.replace(/\n$/, "").split("\n");
  if (out.json) {
    const found = await findGateway(session.paths);
    out.document({ file, running: found.state === "running", lines });
    return;
  }
  for (const line of lines) out.result(line);
  if (!follow) return;
  let offset = Buffer.byteLength(text);
  let partial = "";
  while (!signal.aborted && (await findGateway(session.paths)).state === "running") {
    await new Promise((resolve) => setTimeout(resolve, 250));
    const handle = await open(file, "r").catch(() => undefined);
    if (!handle) break;
    try {
      const { size } = await handle.stat();
      if (size > offset) {
        const buffer = Buffer.alloc(size - offset);
        await handle.read(buffer, 0, buffer.length, offset);
        offset = size;
        const chunk = partial + buffer.toString("utf8");
        const complete = chunk.split("\n");
        partial = complete.pop() ?? "";
        for (const line of complete) out.result(line);
      }
    } finally {
      await handle.close();
    }
  }
  if (partial !== "") out.result(partial);
  if (signal.aborted) throw new InterruptedError("interrupted");
}
