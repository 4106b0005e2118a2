import { rm } from "node:fs/promises";
import { FailedError, InterruptedError, UsageError } from "../../common/errors.ts";
import { modelFolder } from "../../ask/conversation.ts";
import type { Settings } from "../../config/schema.ts";
import { readEngineConfig } from "../../pipeline/steps/engine.ts";
import { ConversationError, readConversation } from "../../model/conversation.ts";
import { StateStore } from "../../pipeline/state.ts";
import { WorkdirPaths } from "../../pipeline/workdir.ts";
import { portInUseMessage } from "../../server/ports.ts";
import { settingsUrls } from "../../server/urls.ts";
import { writeGatewayRecord } from "../../gateway/process.ts";
import { startGateway } from "../../gateway/server.ts";
import { loadTokenizer, TokenizerError } from "../../model/tokenizer.ts";
import type { ServedModel } from "../../gateway/openai.ts";
import { type CommandEnv, settingsFor } from "./command.ts";

interface GatewayOptions {
  tritonUrl?: string;
  tritonGrpc?: string;
  port?: number;
  record?: string;
}

/**
 * `gateway`: the OpenAI-compatible API in the foreground, in front of a Triton URL (what `serve`
 * runs beside Triton, and what a systemd unit or a Kubernetes sidecar runs on its own). Ctrl-C
 * or SIGTERM ends it.
 */
export async function run(env: CommandEnv): Promise<void> {
  // `--port` is the gateway's own here, not Triton's (the setting of that name).
  const { port: _tritonPort, ...flags } = env.flags;
  const { settings } = settingsFor({ ...env, flags });
  const o = env.options as GatewayOptions;
  const out = env.output;
  const tritonUrl = o.tritonUrl ?? settingsUrls(settings).http;
  if (!/^https?:\/\/[^\s/]+/.test(tritonUrl)) throw new UsageError(`--triton-url must be an http:// or https:// URL, got ${JSON.stringify(tritonUrl)}.`);
  const tritonGrpc = o.tritonGrpc ?? (o.tritonUrl === undefined ? settingsUrls(settings).grpc : `${new URL(tritonUrl).hostname}:${settings.grpcPort}`);
  if (!/^[^\s/:]+:\d{1,5}$/.test(tritonGrpc) && !/^\[[0-9a-fA-F:]+\]:\d{1,5}$/.test(tritonGrpc)) {
    throw new UsageError(`--triton-grpc must be <host>:<port> (Triton's gRPC endpoint, 8001 by default), got ${JSON.stringify(tritonGrpc)}.`);
  }
  const port = o.port ?? (settings.openaiPort === 0 ? 9000 : settings.openaiPort);

  // The process's own record first, so that whoever started it can find and end it from now on.
  if (o.record) await writeGatewayRecord(o.record, { url: `http://${settings.host === "0.0.0.0" ? "127.0.0.1" : settings.host}:${port}`, tritonUrl });
  try {
    const folder = await modelFolder(settings);
    if (folder === undefined) {
      throw new UsageError(
        `No model files for the gateway: ${settings.workdir} has no built weights. Pass \`--model-dir <folder>\` with the model's tokenizer.json, tokenizer_config.json and generation_config.json, or run \`llama3-trt build\` first.`,
      );
    }
    const model = await servedModel(settings, folder);
    // The model's own tokenizer counts usage and checks max_input_len (as v0.8.0's preprocessing
    // encodes: no added special tokens, the template's own counted as the single tokens they are).
    const tokens = await loadTokenizer(folder).catch((error: unknown) => {
      throw error instanceof TokenizerError ? new UsageError(`${error.message} The gateway counts tokens with it: pass \`--model-dir\` with the model's files.`, { cause: error }) : error;
    });

    const stopped = new Promise<NodeJS.Signals>((resolve) => {
      for (const signal of ["SIGINT", "SIGTERM", "SIGHUP"] as const) process.once(signal, () => resolve(signal));
    });
    let gateway;
    try {
      gateway = await startGateway({
        host: settings.host,
        port,
        tritonUrl,
        tritonGrpc,
        model,
        tokens,
        apiKey: settings.apiKey ?? undefined,
        log: (line) => out.info(line),
      });
    } catch (error) {
      const code = (error as NodeJS.ErrnoException).code;
      if (code === "EADDRINUSE") throw new FailedError(portInUseMessage(settings.host, port, "--port"), { cause: error });
      if (code === "EADDRNOTAVAIL") throw new UsageError(`--host ${settings.host} is not an address of this machine.`, { cause: error });
      throw error;
    }
    const document = { url: `${gateway.url}/v1`, model: model.id, triton: tritonUrl, maxInputLen: model.maxInputLen, maxOutputLen: model.maxOutputLen, apiKey: settings.apiKey !== null };
    if (out.json) out.document(document);
    else {
      out.result(
        `OpenAI API at ${gateway.url}/v1 for ${model.id} (Triton ${tritonUrl}${settings.apiKey !== null ? ", API key required" : ""}); health ${gateway.url}/health, metrics ${gateway.url}/metrics`,
      );
    }
    const signal = await stopped;
    await gateway.close();
    out.info(`gateway stopped (${signal})`);
    if (signal === "SIGINT") throw new InterruptedError("interrupted; the gateway was stopped");
  } finally {
    if (o.record) await rm(o.record, { force: true });
  }
}

/** The model as the gateway serves it: its id, conversation rules and the engine's limits. */
async function servedModel(settings: Settings, folder: string): Promise<ServedModel> {
  let rules;
  try {
    rules = await readConversation(folder, settings.model);
  } catch (error) {
    if (error instanceof ConversationError) throw new UsageError(`${settings.model}: ${error.message}`, { cause: error });
    throw error;
  }
  return { id: settings.model, rules, ...(await engineLimits(settings)) };
}

/** The built engine's limits when this workdir has one; else the settings' (a sidecar's flags). */
async function engineLimits(settings: Settings): Promise<{ maxInputLen: number; maxOutputLen: number }> {
  try {
    const engine = (await StateStore.load(new WorkdirPaths(settings.workdir))).get("engine")?.out as { dir?: string } | undefined;
    if (engine?.dir) {
      const limits = await readEngineConfig(engine.dir);
      if (limits.maxInputLen > 0 && limits.maxOutputLen > 0) return limits;
    }
  } catch {
    // No workdir or no engine here: the gateway runs apart from the build.
  }
  return { maxInputLen: settings.maxInputLen, maxOutputLen: settings.maxOutputLen };
}
