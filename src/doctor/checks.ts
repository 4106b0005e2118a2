import { FailedError } from "../common/errors.ts";
import type { Assessment } from "../model/assessment.ts";
import { formatBytes } from "../common/format.ts";
import type { Settings } from "../config/schema.ts";
import type { EngineInfo } from "../docker/docker-client.ts";
import { labelKeys } from "../docker/labels.ts";
import { freeBytes, diskMargin } from "../hub/disk.ts";
import type { Hub } from "../hub/hub-client.ts";
import type { Clients } from "../pipeline/step.ts";
import { neededForConversion } from "../hub/cache.ts";
import { missingBytes } from "../hub/download.ts";
import { WorkdirPaths } from "../pipeline/workdir.ts";
import { checkPort } from "../server/ports.ts";
import { chosenGpus, hostGpus, type Gpu } from "./nvidia-smi.ts";

export type Status = "ok" | "warning" | "blocker" | "skipped";

export interface Check {
  readonly name: string;
  readonly status: Status;
  readonly detail: string;
  /** What to do about a warning or blocker. */
  readonly fix?: string;
}

export interface DoctorContext {
  readonly settings: Settings;
  /** The command's clients (the Session's): the Hub one fails to be made when its environment is wrong. */
  readonly clients: Pick<Clients, "docker" | "hub">;
  readonly signal: AbortSignal;
}

/** Every check of `doctor`, in order. Each says ok / warning / blocker and, when not ok, the fix. */
export async function runChecks(ctx: DoctorContext): Promise<Check[]> {
  const checks: Check[] = [];
  const engine = await dockerCheck(ctx, checks);
  checks.push(await nvidiaRuntimeCheck(ctx, engine));
  checks.push(await gpuCheck(ctx));
  checks.push(...(await hubChecks(ctx)));
  checks.push(...(await portChecks(ctx)));
  return checks;
}

async function dockerCheck(ctx: DoctorContext, checks: Check[]): Promise<EngineInfo | undefined> {
  try {
    const engine = await ctx.clients.docker.info();
    checks.push({ name: "Docker engine", status: "ok", detail: `Docker ${engine.serverVersion} at ${engine.host}${engine.rootless ? " (rootless)" : ""}` });
    return engine;
  } catch (error) {
    checks.push({
      name: "Docker engine",
      status: "blocker",
      detail: error instanceof Error ? error.message : String(error),
      fix: "install Docker and start it (`sudo systemctl start docker`), or set DOCKER_HOST",
    });
    return undefined;
  }
}

async function nvidiaRuntimeCheck(ctx: DoctorContext, engine: EngineInfo | undefined): Promise<Check> {
  const name = "NVIDIA container runtime";
  if (ctx.settings.gpus === "none") return { name, status: "skipped", detail: "--gpus none: no GPU requested" };
  if (!engine) return { name, status: "skipped", detail: "no Docker engine to ask" };
  if (engine.runtimes.includes("nvidia")) return { name, status: "ok", detail: "the engine lists the nvidia runtime" };
  // CDI and the toolkit's hook need no named runtime: only a container asking for a GPU tells.
  const image = [ctx.settings.buildImage, ctx.settings.tritonImage].find(Boolean);
  const present = image ? await ctx.clients.docker.inspectImage(image).catch(() => undefined) : undefined;
  if (!image || !present) {
    return {
      name,
      status: "warning",
      detail: "the engine lists no nvidia runtime, and no local image to try a GPU container with",
      fix: "install nvidia-container-toolkit and run `nvidia-ctk runtime configure --runtime=docker`; `build` checks again before any GPU step",
    };
  }
  try {
    const result = await ctx.clients.docker.runToCompletion(
      { image, cmd: ["nvidia-smi", "-L"], workingDir: "/", mounts: [], gpus: ctx.settings.gpus },
      { labels: { [labelKeys.tool]: "1", [labelKeys.role]: "doctor" }, onLine: () => {}, signal: ctx.signal, engine },
    );
    return result.exitCode === 0
      ? { name, status: "ok", detail: "a container got the GPUs" }
      : { name, status: "blocker", detail: `nvidia-smi failed in a GPU container (exit ${result.exitCode})`, fix: "check the NVIDIA driver on the host" };
  } catch (error) {
    return {
      name,
      status: "blocker",
      detail: error instanceof Error ? error.message.split(". Install")[0] ?? error.message : String(error),
      fix: "install nvidia-container-toolkit and run `nvidia-ctk runtime configure --runtime=docker`, or pass `--gpus none`",
    };
  }
}

/** Rough GPU memory a model needs per GPU: its weights split over tp, plus room for the KV cache. */
export function gpuMemoryNeededMiB(modelBytes: number, tp: number, quantize: Settings["quantize"]): number {
  const weights = quantize === "int4" ? modelBytes / 4 : quantize === "int8" ? modelBytes / 2 : modelBytes;
  return Math.ceil((weights / tp) * 1.2 / (1024 * 1024));
}

async function gpuCheck(ctx: DoctorContext): Promise<Check> {
  const name = "GPUs";
  const { gpus, tp, dtype } = ctx.settings;
  if (gpus === "none") return { name, status: "skipped", detail: "--gpus none" };
  let list: Gpu[];
  try {
    list = await hostGpus(ctx.signal);
  } catch (error) {
    const missing = (error as NodeJS.ErrnoException).code === "ENOENT";
    const failure = (error as { shortMessage?: string; stderr?: string }).stderr?.trim() || ((error as { shortMessage?: string }).shortMessage ?? String(error));
    return {
      name,
      status: "blocker",
      detail: missing ? "nvidia-smi not found: no NVIDIA driver on this host" : `nvidia-smi failed: ${failure.split("\n")[0]}`,
      fix: "install the NVIDIA driver, or pass `--gpus none` to build on a host without GPUs (the engine step needs one)",
    };
  }
  const chosen = chosenGpus(list, gpus);
  const summary = chosen.map((g) => `${g.index}: ${g.name}, ${(g.memoryTotalMiB / 1024).toFixed(0)} GiB, compute ${g.computeCapability}`).join("; ");
  if (chosen.length < tp) {
    return { name, status: "blocker", detail: `${chosen.length} GPU(s) for --tp ${tp} (${summary || "none"})`, fix: `lower --tp or choose ${tp} GPUs with --gpus` };
  }
  if (dtype === "bfloat16" && chosen.some((g) => g.computeCapability < 8)) {
    return { name, status: "blocker", detail: `bfloat16 needs compute capability 8.0 (Ampere) or newer: ${summary}`, fix: "pass `--dtype float16`" };
  }
  return { name, status: "ok", detail: summary };
}

async function hubChecks(ctx: DoctorContext): Promise<Check[]> {
  const { model, revision, modelDir } = ctx.settings;
  if (modelDir !== null) return [{ name: "Hugging Face", status: "skipped", detail: `--model-dir ${modelDir}: no download` }];
  let client: Hub;
  try {
    client = ctx.clients.hub;
  } catch (error) {
    return [{ name: "Hugging Face token", status: "blocker", detail: (error as Error).message }];
  }
  const hub = client.hub;
  if (hub.offline) {
    return [{ name: "Hugging Face token", status: "skipped", detail: "HF_HUB_OFFLINE is set: the token is not checked, the model must be in the cache" }];
  }
  const checks: Check[] = [];
  if (!hub.token) {
    checks.push({
      name: "Hugging Face token",
      status: "blocker",
      detail: `no token (looked in ${hub.tokenLookup.join(", ")})`,
      fix: `request access at ${hub.endpoint}/${model}, then \`huggingface-cli login\` or \`export HF_TOKEN=hf_…\``,
    });
    return checks;
  }
  try {
    const me = await client.whoami();
    checks.push({ name: "Hugging Face token", status: "ok", detail: `valid, user ${me.name} (from ${hub.tokenSource})` });
  } catch (error) {
    checks.push({ name: "Hugging Face token", status: "blocker", detail: (error as Error).message });
    return checks;
  }
  try {
    await client.checkAccess(model);
    const commit = await client.resolveCommit(model, revision);
    const files = (await client.listFiles(model, commit)).filter((f) => neededForConversion(f.path));
    const total = files.reduce((n, f) => n + f.size, 0);
    checks.push({ name: "Model access", status: "ok", detail: `${model}@${revision}: ${files.length} files, ${formatBytes(total)}` });
    checks.push(await diskCheck(ctx, hub.cacheDir, await missingBytes({ repo: model, files, cacheDir: hub.cacheDir }), total));
  } catch (error) {
    checks.push({ name: "Model access", status: "blocker", detail: error instanceof FailedError ? error.message : String(error) });
  }
  return checks;
}

async function diskCheck(ctx: DoctorContext, cacheDir: string, toDownload: number, modelBytes: number): Promise<Check> {
  const name = "Disk";
  const cacheFree = await freeBytes(cacheDir);
  if (cacheFree < toDownload + diskMargin(toDownload)) {
    return {
      name,
      status: "blocker",
      detail: `need ${formatBytes(toDownload + diskMargin(toDownload))} in ${cacheDir} for the download, ${formatBytes(cacheFree)} free`,
      fix: "free some space, or point HF_HUB_CACHE (or HF_HOME) at a larger disk",
    };
  }
  // The checkpoint and the engine are each about the size of the weights (less when quantized).
  const workdir = new WorkdirPaths(ctx.settings.workdir).root;
  const workdirFree = await freeBytes(workdir);
  const built = 2 * modelBytes;
  if (workdirFree < built) {
    return {
      name,
      status: "warning",
      detail: `the checkpoint and engine take about ${formatBytes(built)} in ${workdir}, ${formatBytes(workdirFree)} free`,
      fix: "free some space or choose another --workdir",
    };
  }
  return { name, status: "ok", detail: `${formatBytes(toDownload)} to download (${formatBytes(cacheFree)} free), about ${formatBytes(built)} to build (${formatBytes(workdirFree)} free)` };
}

async function portChecks(ctx: DoctorContext): Promise<Check[]> {
  const { host, port, grpcPort, metricsPort, openaiPort } = ctx.settings;
  const busy: string[] = [];
  // The OpenAI gateway's port too, unless `serve` runs none (--openai-port 0).
  for (const p of openaiPort === 0 ? [port, grpcPort, metricsPort] : [port, grpcPort, metricsPort, openaiPort]) {
    const check = await checkPort(host, p);
    if (check.state === "in-use") busy.push(check.holder ? `${p} (by ${check.holder})` : String(p));
    if (check.state === "not-local") busy.push(`${p} (${host} is not an address of this host)`);
  }
  const exposed = host === "0.0.0.0" ? " (0.0.0.0: reachable from the network; Docker's published ports bypass host firewalls such as ufw)" : "";
  if (busy.length === 0) return [{ name: "Ports", status: host === "0.0.0.0" ? "warning" : "ok", detail: `${host}:${port}, ${grpcPort}, ${metricsPort}${openaiPort === 0 ? "" : `, ${openaiPort}`} free${exposed}` }];
  return [
    {
      name: "Ports",
      status: "blocker",
      detail: `in use on ${host}: ${busy.join(", ")}`,
      fix: "stop what uses them (`llama3-trt stop` if it is this tool's server), or choose others with --port, --grpc-port, --metrics-port, --openai-port",
    },
  ];
}

/**
 * "Will this fit, and how well": the model judged from its own small files against v0.8.0, the
 * limits and the memory of the GPUs this host has (or `--gpu <profile>`).
 */
export async function modelChecks(assessment: () => Promise<Assessment>): Promise<Check[]> {
  let a: Assessment;
  try {
    a = await assessment();
  } catch (error) {
    return [{ name: "Model", status: "blocker", detail: error instanceof Error ? error.message : String(error), fix: "check --model / --model-dir and the Hugging Face checks above" }];
  }
  const m = a.model;
  const own = a.refusals.filter((r) => r.rule !== "memory");
  const model: Check =
    own.length === 0
      ? {
          name: "Model",
          status: "ok",
          detail: `${m.from}: ${m.architecture}, ${(m.parameters / 1e9).toFixed(2)} B parameters, ${m.maxPositionEmbeddings} positions; ${a.conversation.template === "none" ? "no chat template" : `chat template from ${a.conversation.template}`}, end_id ${a.conversation.endId}`,
        }
      : {
          name: "Model",
          status: "blocker",
          detail: own.map((r) => `${r.field} = ${r.value}: ${r.message}`).join(" | "),
          fix: "`llama3-trt build` refuses this (exit 2) before any download: choose another --model or change the settings named",
        };
  const mem = a.memory;
  const first = mem.perGpu[0];
  let memory: Check;
  if (mem.gpus.source === "unknown" || !first || mem.fits === null) {
    memory = {
      name: "Memory",
      status: "skipped",
      detail: `${mem.gpus.source === "unknown" ? mem.gpus.reason : "no plan"}${first ? `; each of ${mem.tp} GPU(s) needs ${formatBytes(first.weightsBytes)} of weights + ${formatBytes(first.runtimeBytes)} of runtime buffers + the KV cache` : ""}`,
    };
  } else {
    const where = mem.gpus.source === "profile" ? `${mem.tp} x ${mem.gpus.name} (--gpu ${mem.gpus.profile})` : `${mem.tp} x ${mem.gpus.name}`;
    const detail = `${where}, per GPU: weights ${formatBytes(first.weightsBytes)}, runtime ${formatBytes(first.runtimeBytes)}, KV cache ${formatBytes(first.kvCacheBytes ?? 0)} = ${first.kvCacheTokens} tokens = ${mem.fullRequests} concurrent requests of ${mem.requestTokens} tokens, headroom ${formatBytes(first.headroomBytes ?? 0)}`;
    const refused = a.refusals.find((r) => r.rule === "memory");
    const warned = a.warnings.find((w) => w.rule === "kv-cache");
    memory = refused
      ? { name: "Memory", status: "blocker", detail: refused.message, fix: mem.optionsThatFit[0] ? `for example --quantize ${mem.optionsThatFit[0].quantize} --tp ${mem.optionsThatFit[0].tp}` : "larger GPUs, or lower --max-batch-size / --max-input-len" }
      : warned
        ? { name: "Memory", status: "warning", detail: `${detail}; ${warned.message}`, fix: "fewer concurrent full-length requests will be served than --max-batch-size; --quantize or a larger --tp leaves more room" }
        : { name: "Memory", status: "ok", detail };
  }
  return [model, memory];
}
