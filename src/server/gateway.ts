import { modelFolder } from "../ask/conversation.ts";
import { FailedError, InterruptedError } from "../common/errors.ts";
import { pausePoint } from "../common/test-hooks.ts";
import { findGateway, gatewayLogFile, type SelfCommand, spawnGateway, stopGateway, waitForGateway } from "../gateway/process.ts";
import type { Session } from "../pipeline/session.ts";
import { gatewayUrl, type ServerUrls } from "./urls.ts";

export interface StartedGateway {
  /** The OpenAI API's base URL, as clients configure it (`…/v1`). */
  readonly url: string;
  readonly pid: number;
  readonly log: string;
}

/** How long the gateway may take to load the tokenizer and find Triton ready. */
const gatewayStartMs = 60_000;


/**
 * Starts the OpenAI gateway beside a ready Triton (unless `--openai-port 0`) and waits until it
 * answers /health. A gateway this workdir already has is ended first: it may point at a Triton
 * that is gone, or carry other settings. On failure nothing of it is left running.
 */
export async function startGatewayBeside(
  session: Session,
  triton: ServerUrls,
  launcher: { readonly self: SelfCommand; readonly env: Readonly<Record<string, string | undefined>> },
  signal: AbortSignal,
): Promise<StartedGateway | undefined> {
  const { settings, paths } = session;
  if (settings.openaiPort === 0) return undefined;
  await stopGateway(paths);
  const modelDir = await modelFolder(settings);
  if (modelDir === undefined) throw new FailedError(`The gateway needs the model's tokenizer files, and ${paths.root} records no weights. Run \`llama3-trt build\` first.`);
  const base = gatewayUrl(settings.host, settings.openaiPort);
  await pausePoint("serve:before-gateway");
  const { pid, log } = await spawnGateway({
    self: launcher.self,
    paths,
    host: settings.host,
    port: settings.openaiPort,
    tritonUrl: triton.http,
    tritonGrpc: triton.grpc,
    model: settings.model,
    modelDir,
    apiKey: settings.apiKey,
    env: launcher.env,
  });
  await pausePoint("serve:gateway-spawned");
  try {
    await waitForGateway(base, pid, log, gatewayStartMs, signal);
  } catch (error) {
    await stopGateway(paths, 2_000);
    // A gateway that died before writing its record is gone already; one that did is ended above.
    if (signal.aborted) throw new InterruptedError("interrupted; the gateway was stopped", { cause: error });
    throw error;
  }
  return { url: `${base}/v1`, pid, log };
}

/** This workdir's gateway as `status` shows it. */
export async function describeGateway(session: Session) {
  const found = await findGateway(session.paths);
  const log = gatewayLogFile(session.paths);
  if (found.state !== "running") return { state: "not running" as const, log };
  const { pid, url } = found.record;
  const ready = await fetch(`${url}/health`, { signal: AbortSignal.timeout(1_000) })
    .then(async (r) => {
      await r.body?.cancel();
      return r.status === 200;
    })
    .catch(() => false);
  return { state: "running" as const, pid, url: `${url}/v1`, ready, log };
}
