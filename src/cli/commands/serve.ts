import { Session } from "../../pipeline/session.ts";
import { runInForeground, ServerRunningError, startServer, stopServers, type StartedServer } from "../../server/server.ts";
import { startGatewayBeside, type StartedGateway } from "../../server/gateway.ts";
import { findGateway, stopGateway } from "../../gateway/process.ts";
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
    if (session) await stopGateway(session.paths, 500).catch(() => {});
  });
  session = new Session({ settings, env: env.env, signal: interrupts.signal, toolVersion: version });
  const out = env.output;
  const launcher = { self: env.self, env: env.env };

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
    // `serve --detach` when it already runs: the wanted state holds, like `docker compose up -d`;
    // that includes the gateway, which a killed `serve` may not have started yet.
    if (error instanceof ServerRunningError && options.detach) {
      const running = await findGateway(session.paths);
      const gateway =
        running.state === "running" ? { url: `${running.record.url}/v1`, pid: running.record.pid } : error.urls ? await startGatewayBeside(session, error.urls, launcher, interrupts.signal) : undefined;
      if (out.json) out.document({ container: error.container, urls: error.urls ?? null, gateway: gateway ? { url: gateway.url, pid: gateway.pid } : null, detached: true, alreadyRunning: true });
      else out.result(`Already running: ${error.container}${error.urls ? ` at ${error.urls.http}` : ""}${gateway ? `; OpenAI API at ${gateway.url}` : ""}.`);
      return;
    }
    throw error;
  }

  let gateway: StartedGateway | undefined;
  try {
    gateway = await startGatewayBeside(session, server.urls, launcher, interrupts.signal);
  } catch (error) {
    // serve failed: Triton goes too, as when it does not get ready (the gateway is gone already).
    await stopServers(session.docker, session.paths).catch(() => {});
    throw error;
  }

  if (out.json) {
    out.document({
      container: server.name,
      urls: server.urls,
      gateway: gateway ? { url: gateway.url, pid: gateway.pid } : null,
      readySeconds: server.readySeconds,
      detached: Boolean(options.detach),
    });
  } else {
    out.result(readyText(server, gateway, settings.model, out));
  }
  if (options.detach) {
    out.info("Running in the background: `llama3-trt logs -f` shows its log (`--gateway` the gateway's), `llama3-trt stop` stops it.");
    return;
  }
  out.info("Press Ctrl-C to stop it.");
  try {
    await runInForeground(session, server, interrupts.signal, (line) => out.debug(line));
  } finally {
    // However the foreground server ends, its gateway ends with it.
    await stopGateway(session.paths);
  }
  out.info("The server was stopped (by `llama3-trt stop` or `docker stop`).");
}

function readyText(server: StartedServer, gateway: StartedGateway | undefined, model: string, out: Output): string {
  const u = server.urls;
  return [
    `${out.paint("Ready", "green")} in ${server.readySeconds.toFixed(1)} s: ${model} on Triton (container ${server.name})`,
    `  HTTP     ${u.http}   (POST ${u.http}/v2/models/ensemble/generate)`,
    `  gRPC     ${u.grpc}`,
    `  metrics  ${u.metrics}`,
    ...(gateway ? [`  OpenAI   ${gateway.url}   (POST ${gateway.url}/chat/completions; pid ${gateway.pid}, log ${gateway.log})`] : []),
    `Try: llama3-trt ask "How do I count to nine in French?"`,
  ].join("\n");
}
