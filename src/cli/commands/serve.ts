import { Session } from "../../pipeline/session.ts";
import { runInForeground, ServerRunningError, startServer, type StartedServer } from "../../server/server.ts";
import { handleInterrupts } from "../interrupts.ts";
import { waitFor } from "../spinner.ts";
import type { Output } from "../output.ts";
import { version } from "../version.ts";
import { type CommandEnv, settingsFor } from "./command.ts";

/**
 * `serve`: Triton on the built model repository, ready when this returns (`--detach`) or until
 * Ctrl-C (foreground: the server is stopped and removed, exit 130).
 */
export async function run(env: CommandEnv): Promise<void> {
  const { settings } = settingsFor(env);
  const options = env.options as unknown as { detach?: boolean; timeout: string | number; keepOnFailure?: boolean };
  const timeoutSeconds = Number(options.timeout);
  let session: Session | undefined;
  using interrupts = handleInterrupts(env.output, async () => {
    await session?.killRunContainers().catch(() => {});
  });
  session = new Session({ settings, env: env.env, signal: interrupts.signal, toolVersion: version });
  const out = env.output;

  let server: StartedServer;
  try {
    server = await startServer(session, {
      timeoutSeconds,
      keepOnFailure: options.keepOnFailure === true,
      signal: interrupts.signal,
      events: {
        info: (text) => out.info(text),
        warn: (text) => out.warn(text),
        waiting: async (text) => {
          const wait = await waitFor(out, text);
          return () => wait.stop();
        },
      },
    });
  } catch (error) {
    // `serve --detach` when it already runs: the wanted state holds, like `docker compose up -d`.
    if (error instanceof ServerRunningError && options.detach) {
      if (out.json) out.document({ container: error.container, urls: error.urls ?? null, detached: true, alreadyRunning: true });
      else out.result(`Already running: ${error.container}${error.urls ? ` at ${error.urls.http}` : ""}.`);
      return;
    }
    throw error;
  }

  if (out.json) {
    out.document({ container: server.name, urls: server.urls, readySeconds: server.readySeconds, detached: Boolean(options.detach) });
  } else {
    out.result(readyText(server, settings.model, out));
  }
  if (options.detach) {
    out.info("Running in the background: `llama3-trt logs -f` shows its log, `llama3-trt stop` stops it.");
    return;
  }
  out.info("Press Ctrl-C to stop it.");
  await runInForeground(session, server, interrupts.signal, (line) => out.debug(line));
  out.info("The server was stopped (by `llama3-trt stop` or `docker stop`).");
}

function readyText(server: StartedServer, model: string, out: Output): string {
  const u = server.urls;
  return [
    `${out.paint("Ready", "green")} in ${server.readySeconds.toFixed(1)} s: ${model} on Triton (container ${server.name})`,
    `  HTTP     ${u.http}   (POST ${u.http}/v2/models/ensemble/generate)`,
    `  gRPC     ${u.grpc}`,
    `  metrics  ${u.metrics}`,
    `Try: llama3-trt ask "How do I count to nine in French?"`,
  ].join("\n");
}
