import { mkdir } from "node:fs/promises";
import { dirname, join } from "node:path";
import { writeFileAtomic } from "../common/atomic-file.ts";
import { UsageError } from "../common/errors.ts";
import type { Settings } from "../config/schema.ts";
import { refuseIfNeeded, type Assessment } from "../model/assessment.ts";
import type { Session } from "../pipeline/session.ts";
import { isLocalRecipeImage } from "../pipeline/steps/build-image.ts";
import type { WeightsWork } from "../pipeline/step.ts";
import { serverContainerSpec } from "../server/server.ts";
import { exportFiles, type ExportedFile } from "./files.ts";
import { packageRoot } from "../common/package-root.ts";
import { buildManifests, gatewayImage, type ExportPlan, type GatewaySidecar, type Manifests } from "./manifests.ts";

export interface ExportOptions {
  /** GPUs each node of the cluster has: an engine must fit on one node. */
  readonly gpusPerNode: number;
  /** `nvidia.com/gpu.product` of the nodes, when not derived from `--gpu` or the host's nvidia-smi. */
  readonly gpuProduct: string | undefined;
  readonly namespace: string;
  readonly toolVersion: string;
}

export interface KubernetesExport {
  readonly manifests: Manifests;
  readonly files: readonly ExportedFile[];
  readonly gpuProduct: string;
  readonly warnings: readonly string[];
  /** The gateway sidecar of the Triton pods, if any. */
  readonly gateway: GatewaySidecar | undefined;
}

/** How the NVIDIA GPU Feature Discovery names a GPU in `nvidia.com/gpu.product`: its name, spaces as dashes. */
export function productLabel(gpuName: string): string {
  return gpuName.trim().split(/\s+/).join("-");
}

/** Label values: at most 63 of [A-Za-z0-9_.-], starting and ending with a letter or digit. */
const labelValue = /^([A-Za-z0-9]([A-Za-z0-9_.-]{0,61}[A-Za-z0-9])?)$/;

function gpuProduct(assessment: Assessment, option: string | undefined): string {
  if (option !== undefined) {
    if (!labelValue.test(option)) {
      throw new UsageError(`--gpu-product ${JSON.stringify(option)} is not a label value: use the node's nvidia.com/gpu.product, e.g. NVIDIA-H100-80GB-HBM3 (\`kubectl get nodes -L nvidia.com/gpu.product\`).`);
    }
    return option;
  }
  const gpus = assessment.memory.gpus;
  if (gpus.source !== "unknown") return productLabel(gpus.name);
  throw new UsageError(
    "Which GPUs will build and serve this engine? An engine runs only on the GPU model it was built for, and this host has none to go by. " +
      "Pass `--gpu <profile>` (e.g. `--gpu h100-80gb`) or `--gpu-product <label>` (the nodes' nvidia.com/gpu.product).",
  );
}

/** The gateway beside Triton in each pod, as `serve` runs it, unless `--openai-port 0`. */
export function gatewaySidecar(
  settings: Pick<Settings, "openaiPort" | "maxInputLen" | "maxOutputLen" | "apiKey">,
  toolVersion: string,
): GatewaySidecar | undefined {
  if (settings.openaiPort === 0) return undefined;
  return { image: gatewayImage(toolVersion), port: settings.openaiPort, maxInputLen: settings.maxInputLen, maxOutputLen: settings.maxOutputLen, apiKey: settings.apiKey !== null };
}

/**
 * The export from the session's plan: the same steps, argv and mounts as `plan --json`, the same
 * Triton container as `serve`, judged the same way (a model or limits `build` would refuse are
 * refused here, exit 2), and an engine that needs more GPUs than a node has refused with the
 * reason: serving one engine over several nodes is not exported.
 */
export async function kubernetesExport(session: Session, options: ExportOptions): Promise<KubernetesExport> {
  const { settings, paths } = session;
  if (settings.modelDir !== null) {
    throw new UsageError(
      `--model-dir ${settings.modelDir} is a folder on this host, which the cluster cannot read: the build Job downloads the model from the Hub. Drop --model-dir (and set --model and --revision).`,
    );
  }
  // tp × pp ranks, one GPU each; v0.8.0 as this tool builds it has pp = 1.
  const pp = 1;
  const worldSize = settings.tp * pp;
  if (worldSize > options.gpusPerNode) {
    throw new UsageError(
      `The engine needs tp × pp = ${settings.tp} × ${pp} = ${worldSize} GPUs in one Triton pod, but a node has ${options.gpusPerNode} (--gpus-per-node): ` +
        `a pod cannot span nodes. Lower --tp to ${options.gpusPerNode} or less, or use nodes with ${worldSize} GPUs. ` +
        "Serving one engine over several nodes (LeaderWorkerSet) is described in the README, not exported.",
    );
  }
  const assessment = await session.modelAssessment({ probe: false });
  refuseIfNeeded(assessment);
  const product = gpuProduct(assessment, options.gpuProduct);

  const steps = await (await session.pipeline()).evaluate();
  const weights = (steps.find((s) => s.id === "weights")?.work as WeightsWork | undefined)?.weights;
  if (!weights?.commit) throw new Error("the plan's weights have no commit");
  const triton = serverContainerSpec(settings, {
    engine: { dir: paths.engine, tp: settings.tp, maxBatchSize: settings.maxBatchSize, maxInputLen: settings.maxInputLen, maxOutputLen: settings.maxOutputLen },
    weights: { mountDir: weights.mountDir, modelPath: weights.modelPath, commit: weights.commit, files: weights.files },
    modelRepo: { dir: paths.modelRepo, configs: {} },
  });
  const gateway = gatewaySidecar(settings, options.toolVersion);
  const plan: ExportPlan = {
    model: settings.model,
    steps,
    triton,
    worldSize,
    gpuProduct: product,
    hfEndpoint: session.hubEndpoint(),
    weightsBytes: weights.files.reduce((sum, f) => sum + f.size, 0),
    gateway,
  };
  const manifests = buildManifests(plan);
  const files = exportFiles(manifests, {
    toolVersion: options.toolVersion,
    model: settings.model,
    commit: weights.commit,
    dtype: settings.dtype,
    quantize: settings.quantize,
    tp: settings.tp,
    gpuProduct: product,
    namespace: options.namespace,
    images: [settings.buildImage, triton.image, ...(gateway ? [gateway.image] : [])],
    gateway,
  });
  const warnings: string[] = [];
  if (isLocalRecipeImage(settings.buildImage)) {
    warnings.push(
      `The build image ${settings.buildImage} is built on this host from templates/build-image (\`llama3-trt build\` makes it): push it to a registry the cluster can pull from, ` +
        "and set its newName under `images:` in kustomization.yaml.",
    );
  }
  if (gateway) {
    warnings.push(
      `The gateway image ${gateway.image} is not published: build it from ${join(packageRoot, "templates", "gateway-image")} ` +
        `(\`docker build --build-arg LLAMA3_TRT_VERSION=${options.toolVersion} -t <registry>/${gateway.image} <that folder>\`), push it to a registry the cluster can pull from, ` +
        "and set its newName under `images:` in kustomization.yaml.",
    );
  }
  return { manifests, files, gpuProduct: product, warnings, gateway };
}

/** Writes the files into `out` (made if missing); files of the folder that are not the export's are left alone. */
export async function writeExport(out: string, files: readonly ExportedFile[]): Promise<void> {
  for (const f of files) {
    const path = join(out, ...f.path.split("/"));
    await mkdir(dirname(path), { recursive: true });
    await writeFileAtomic(path, f.text);
  }
}
