import { stat } from "node:fs/promises";
import { resolve } from "node:path";
import { UsageError } from "../../common/errors.ts";
import { kubernetesExport, writeExport, type KubernetesExport } from "../../kubernetes/export.ts";
import { names } from "../../kubernetes/manifests.ts";
import { Session } from "../../pipeline/session.ts";
import { version } from "../version.ts";
import { type CommandEnv, settingsFor } from "./command.ts";

/** The export's own options, shared by `export kubernetes` and `plan --target kubernetes`. */
export interface ExportFlags {
  readonly out?: string;
  readonly dryRun?: boolean;
  readonly gpusPerNode: number | string;
  readonly gpuProduct?: string;
  readonly namespace: string;
}

export const defaultOut = "llama3-trt-kubernetes";

/** `export kubernetes [--out <dir>] [--dry-run]`: the build Job, Triton Deployment and the rest, as a kustomize folder. */
export async function run(env: CommandEnv): Promise<void> {
  const [target] = env.args;
  if (target !== "kubernetes") throw new UsageError(`\`llama3-trt export ${target ?? ""}\`: the one target is \`kubernetes\` (\`llama3-trt export kubernetes --out <dir>\`).`);
  await exportKubernetes(env, env.options as unknown as ExportFlags);
}

export async function exportKubernetes(env: CommandEnv, flags: ExportFlags): Promise<void> {
  const { settings } = settingsFor(env);
  const out = resolve(env.cwd, flags.out ?? defaultOut);
  const existing = await stat(out).catch(() => undefined);
  if (existing && !existing.isDirectory()) throw new UsageError(`--out ${out} is a file, not a folder: pass a folder for the manifests.`);
  const session = new Session({ settings, env: env.env, signal: new AbortController().signal, toolVersion: version });
  const result = await kubernetesExport(session, {
    gpusPerNode: Number(flags.gpusPerNode),
    gpuProduct: flags.gpuProduct,
    namespace: flags.namespace,
    toolVersion: version,
  });
  const dryRun = flags.dryRun === true;
  for (const warning of result.warnings) env.output.warn(warning);
  if (!dryRun) await writeExport(out, result.files);
  if (env.output.json) {
    env.output.document(exportDocument(out, result, !dryRun));
    return;
  }
  env.output.result(describeExport(out, result, dryRun, flags.namespace));
}

export function exportDocument(out: string, result: KubernetesExport, written: boolean) {
  const m = result.manifests;
  return {
    target: "kubernetes",
    out,
    written,
    fingerprint: m.fingerprint,
    job: m.job.name,
    buildFolder: m.layout.build,
    gpuProduct: result.gpuProduct,
    files: result.files.map((f) => ({ path: f.path, objects: f.objects, text: f.text })),
    warnings: result.warnings,
  };
}

function describeExport(out: string, result: KubernetesExport, dryRun: boolean, namespace: string): string {
  const m = result.manifests;
  const lines = [
    `Build ${m.layout.buildId}: Job ${m.job.name}, into ${m.layout.build}/ on the volume, for ${result.gpuProduct} nodes.`,
    `${dryRun ? "Would write (nothing written)" : "Wrote"} ${result.files.length} files in ${out}:`,
    ...result.files.map((f) => `  ${f.path.padEnd(44)}${f.objects.map((o) => `${o.kind} ${o.name}`).join(", ")}`),
  ];
  if (dryRun) {
    for (const f of result.files) lines.push("", `--- ${f.path}`, f.text.trimEnd());
    return lines.join("\n");
  }
  lines.push(
    "",
    "Next:",
    `  kubectl create namespace ${namespace}`,
    `  kubectl -n ${namespace} create secret generic ${names.tokenSecret} --from-file=${names.tokenKey}=$HOME/.cache/huggingface/token`,
    ...(result.gateway?.apiKey ? [`  kubectl -n ${namespace} create secret generic ${names.apiKeySecret} --from-file=${names.apiKeyKey}=<file with the key>`] : []),
    `  kubectl apply -k ${out}`,
    `  kubectl -n ${namespace} logs -f job/${m.job.name} --all-containers --prefix`,
  );
  return lines.join("\n");
}
