/**
 * The export's folder: the objects as YAML files, each opened by comments that say what it is
 * and what a person may change, and the kustomization.yaml that `kubectl apply -k` reads.
 */
import { stringify } from "yaml";
import type { GatewaySidecar, KubernetesObject, Manifests } from "./manifests.ts";
import { names } from "./manifests.ts";

export interface ExportedFile {
  /** Relative to the export folder, `/`-separated. */
  readonly path: string;
  readonly objects: readonly { readonly kind: string; readonly name: string }[];
  readonly text: string;
}

/** Facts for the comments: what this build is. */
export interface ExportFacts {
  readonly toolVersion: string;
  readonly model: string;
  readonly commit: string;
  readonly dtype: string;
  readonly quantize: string;
  readonly tp: number;
  readonly gpuProduct: string;
  readonly namespace: string;
  /** The images of the objects, for kustomize's `images:` (a registry mirror). */
  readonly images: readonly string[];
  /** The OpenAI-compatible gateway sidecar, if the pods have one. */
  readonly gateway: GatewaySidecar | undefined;
}

const yamlOptions = { lineWidth: 0 } as const;

function comment(lines: readonly string[]): string {
  return lines.map((line) => (line === "" ? "#" : `# ${line}`)).join("\n");
}

function file(path: string, header: readonly string[], objects: readonly KubernetesObject[]): ExportedFile {
  const body = objects.map((o) => stringify(o.body, yamlOptions).trimEnd()).join("\n---\n");
  return { path, objects: objects.map((o) => ({ kind: o.kind, name: o.name })), text: `${comment(header)}\n${body}\n` };
}

/** `registry:5000/org/name:tag` → name `registry:5000/org/name`, tag `tag` (kustomize matches the name without tag). */
export function splitImage(ref: string): { name: string; tag?: string; digest?: string } {
  const [withoutDigest, digest] = ref.split("@") as [string, string | undefined];
  const slash = withoutDigest.lastIndexOf("/");
  const colon = withoutDigest.lastIndexOf(":");
  const tagged = colon > slash;
  return {
    name: tagged ? withoutDigest.slice(0, colon) : withoutDigest,
    ...(tagged ? { tag: withoutDigest.slice(colon + 1) } : {}),
    ...(digest ? { digest } : {}),
  };
}

export function exportFiles(m: Manifests, facts: ExportFacts): ExportedFile[] {
  const build = m.layout.buildId;
  const what = `${facts.model}@${facts.commit.slice(0, 12)}, ${facts.dtype}${facts.quantize === "none" ? "" : ` ${facts.quantize}`}, tp ${facts.tp}, for ${facts.gpuProduct} nodes`;
  const made = [`Made by \`llama3-trt export kubernetes\` (llama3-trt ${facts.toolVersion}) from the settings and plan of \`llama3-trt build\` and \`serve\`.`, `Build ${build}: ${what}.`];

  const images = [...new Set(facts.images)].map((ref) => {
    const { name, tag, digest } = splitImage(ref);
    return { name, newName: name, ...(tag ? { newTag: tag } : {}), ...(digest ? { digest } : {}) };
  });
  const kustomization = {
    apiVersion: "kustomize.config.k8s.io/v1beta1",
    kind: "Kustomization",
    namespace: facts.namespace,
    resources: ["volume.yaml", "build-job.yaml", "triton.yaml", "service.yaml", "disruption-budget.yaml"],
    replicas: [{ name: names.deployment, count: 1 }],
    images,
  };
  const kustomizationText = [
    comment([
      "Llama 3 on TensorRT-LLM v0.8.0 and Triton 24.03, for `kubectl apply -k <this folder>`.",
      ...made,
      "",
      "Before the first apply, in the namespace below (the export never contains the token; from the",
      "file `huggingface-cli login` writes, so the token is in no command line or shell history):",
      `  kubectl create namespace ${facts.namespace}`,
      `  kubectl -n ${facts.namespace} create secret generic ${names.tokenSecret} --from-file=${names.tokenKey}=$HOME/.cache/huggingface/token`,
      ...(facts.gateway?.apiKey
        ? [
            "and the OpenAI gateway's API key, from a file that holds only the key (the pods do not start without it):",
            `  kubectl -n ${facts.namespace} create secret generic ${names.apiKeySecret} --from-file=${names.apiKeyKey}=<file with the key>`,
          ]
        : []),
      "",
      "Values to change here:",
      "  namespace   where everything goes",
      "  replicas    Triton pods to start with (with autoscaling on, the HPA decides)",
      "  images      newName/newTag of each image: a registry mirror. The build image must be one the",
      ...(facts.gateway
        ? [
            "              cluster can pull: a `llama3-trt/…` image is built on your host, push it first;",
            "              the same for the gateway's, built from templates/gateway-image of llama3-trt.",
          ]
        : ["              cluster can pull: a `llama3-trt/…` image is built on your host, push it first."]),
      "              Set them before the first apply: a Job cannot change once created (delete it",
      "              first; its steps' markers make the re-run instant)",
      "  components  uncomment `autoscaling` once the Prometheus Operator and the Prometheus adapter",
      "              are installed (see autoscaling/kustomization.yaml)",
      "  patches     uncomment the one below to use a storage class other than the cluster's default",
      "The GPU model is not a value to change here: the engine is built for it. Export again with",
      "`--gpu-product` (or `--gpu`), which names a new build folder and Job.",
    ]),
    stringify(kustomization, yamlOptions).trimEnd(),
    comment([
      "components:",
      "  - autoscaling",
      "patches:",
      "  - target: { kind: PersistentVolumeClaim, name: llama3-trt }",
      "    patch: |-",
      "      - op: add",
      "        path: /spec/storageClassName",
      "        value: <your storage class>",
    ]),
    "",
  ].join("\n");

  const autoscalingKustomization = {
    apiVersion: "kustomize.config.k8s.io/v1alpha1",
    kind: "Component",
    resources: ["pod-monitor.yaml", "prometheus-rule.yaml", "hpa.yaml"],
  };
  return [
    { path: "kustomization.yaml", objects: [], text: kustomizationText },
    file(
      "volume.yaml",
      [
        "The volume of every build and of the Hugging Face cache: builds/<fingerprint>/… and hub/.",
        ...made,
        "",
        "Values to change: spec.resources.requests.storage (about 3.75 × the model's files: weights,",
        "checkpoint and engine), spec.accessModes (ReadWriteMany lets the build and Triton pods sit on",
        "any nodes; with ReadWriteOnce they must share one node), the storage class (kustomization.yaml).",
      ],
      [m.claim],
    ),
    file(
      "build-job.yaml",
      [
        "The build, in the cluster: what `llama3-trt build` does, one init container per step in the",
        "plan's order (clone, clone, download, convert_checkpoint.py, trtllm-build), the model repository",
        "fill last, each with the plan's own argv as `args`. Everything goes to " + m.layout.build + "/ on",
        "the volume: applying it again with the same settings changes nothing, and a changed setting is",
        "a new Job building beside the old engine. A step whose outputs are complete is skipped (its",
        "status/<step>.done file), so a retried pod goes on where the last one stopped.",
        ...made,
        "",
        `The token comes from the Secret ${names.tokenSecret} (key ${names.tokenKey}); nothing here contains it.`,
        "Watch it: kubectl logs -f job/" + m.job.name + " --all-containers --prefix",
      ],
      [m.job],
    ),
    file(
      "triton.yaml",
      [
        "Triton on the build's engine and model repository (read-only): `llama3-trt serve`'s container,",
        "the `mpirun … tritonserver` line with one rank per GPU of the engine. It waits for the build",
        "Job to finish, then loads the engine (the startup probe allows 30 minutes), and is ready when",
        "/v2/health/ready answers.",
        ...made,
        ...(facts.gateway
          ? [
              "",
              `Beside it, the OpenAI-compatible gateway (\`llama3-trt gateway\`, image ${facts.gateway.image}, built from`,
              `templates/gateway-image) on port ${facts.gateway.port}, in front of Triton on the pod's loopback, with the model's`,
              "tokenizer files read-only from the volume; ready when its /health is (Triton and its ensemble ready).",
              ...(facts.gateway.apiKey
                ? [`Clients must send the API key of the Secret ${names.apiKeySecret} (key ${names.apiKeyKey}); nothing here contains it.`]
                : ["No API key: export with LLAMA3_TRT_API_KEY set to make clients send one (from a Secret)."]),
            ]
          : []),
      ],
      [m.deployment],
    ),
    file(
      "service.yaml",
      [
        `Triton's HTTP (8000), gRPC (8001) and metrics (8002) ports${facts.gateway ? ` and the OpenAI-compatible API (${facts.gateway.port})` : ""} inside the cluster.`,
        ...made,
        "",
        "Try it: kubectl port-forward svc/llama3-trt 8000:8000, then `llama3-trt ask --url http://127.0.0.1:8000 \"…\"`.",
        ...(facts.gateway
          ? [`Or: kubectl port-forward svc/llama3-trt ${facts.gateway.port}:${facts.gateway.port}, then \`llama3-trt ask --openai --url http://127.0.0.1:${facts.gateway.port} "…"\` (any OpenAI client, base URL …/v1).`]
          : []),
      ],
      [m.service],
    ),
    file("disruption-budget.yaml", ["At most one Triton pod is evicted at a time (node drains, upgrades).", ...made], [m.disruptionBudget]),
    {
      path: "autoscaling/kustomization.yaml",
      objects: [],
      text: [
        comment([
          "Optional: scale Triton pods on the time requests wait in Triton's queue per unit of compute",
          "time. Needs the Prometheus Operator (PodMonitor, PrometheusRule) and the Prometheus adapter",
          "serving the metric (rules in prometheus-adapter-values.yaml, not applied by kustomize):",
          "  helm upgrade --install prometheus-adapter prometheus-community/prometheus-adapter -f prometheus-adapter-values.yaml",
          "Enable it with `components: [autoscaling]` in ../kustomization.yaml.",
          ...made,
        ]),
        stringify(autoscalingKustomization, yamlOptions).trimEnd(),
        "",
      ].join("\n"),
    },
    file("autoscaling/pod-monitor.yaml", ["Prometheus scrapes Triton's metrics port of every Triton pod.", ...made], [m.autoscaling.podMonitor]),
    file(
      "autoscaling/prometheus-rule.yaml",
      [`${names.recordedSeries}: per pod, queue time over compute time of the last minute.`, ...made],
      [m.autoscaling.rule],
    ),
    file(
      "autoscaling/hpa.yaml",
      [
        `Scales the Triton Deployment to keep ${names.metric} (from the Prometheus adapter) at 1 per pod on average:`,
        "above 1, requests wait longer than they compute. Each new pod needs a node with free GPUs of the",
        "engine's model. Values to change: minReplicas, maxReplicas, the target averageValue.",
        ...made,
      ],
      [m.autoscaling.hpa],
    ),
    {
      path: "autoscaling/prometheus-adapter-values.yaml",
      objects: [],
      text: `${comment([
        `Helm values for prometheus-adapter: serves ${names.recordedSeries} to the HPA as the pods metric ${names.metric}.`,
        ...made,
      ])}\n${stringify(m.adapterRules, yamlOptions)}`,
    },
  ];
}
