import { formatBytes } from "../common/format.ts";
import { formatValue } from "../config/schema.ts";
import type { ContainerSpec } from "../docker/container-spec.ts";
import type { StepStatus } from "../pipeline/runner.ts";
import type { StepWork } from "../pipeline/step.ts";
import type { Assessment } from "../model/assessment.ts";
import type { Output } from "./output.ts";

/**
 * `plan --json`: `{ "steps": [ { "id", "state", "reason", <work> } ] }`, the contract's shape,
 * with the model's assessment beside it and the top-level `memory` object the contract names.
 */
export function planDocument(workdir: string, statuses: readonly StepStatus[], assessment: Assessment) {
  return {
    workdir,
    steps: statuses.map((s) => ({ id: s.id, state: s.state, reason: s.reason, ...workFields(s.work) })),
    model: modelDocument(assessment),
    memory: assessment.memory,
  };
}

/** The model part of `plan --json`, `build --json` and `doctor --json`. */
export function modelDocument(a: Assessment) {
  return {
    ...a.model,
    conversation: { template: a.conversation.template, endTokenIds: a.conversation.endTokenIds, endId: a.conversation.endId },
    refusals: a.refusals,
    warnings: a.warnings,
    notes: a.notes,
  };
}

function workFields(work: StepWork): Record<string, unknown> {
  switch (work.kind) {
    case "git":
      return { git: work.git };
    case "weights":
      return { weights: work.weights };
    case "image":
      return { image: work.image };
    case "container":
      return { container: { ...work.container, gpus: formatValue(work.container.gpus) }, output: work.output };
    case "files":
      return { files: work.files };
  }
}

/** The plan for a person: one line per step, then the exact work indented under it. */
export function renderPlan(workdir: string, statuses: readonly StepStatus[], output: Output): string {
  const width = Math.max(...statuses.map((s) => s.id.length));
  const lines = [`Pipeline in ${workdir}:`];
  for (const s of statuses) {
    const state = s.state === "done" ? output.paint("done", "green") : output.paint(s.state, s.state === "stale" ? "yellow" : s.state === "unknown" ? "dim" : "bold");
    const reason = s.state === "done" ? "" : `  ${s.reason}`;
    lines.push(`  ${s.id.padEnd(width)}  ${state}${reason}`);
    for (const line of describeWork(s.work)) lines.push(`  ${" ".repeat(width)}    ${output.paint(line, "dim")}`);
  }
  return lines.join("\n");
}

function describeWork(work: StepWork): string[] {
  switch (work.kind) {
    case "git":
      return [`git clone --depth 1 --branch ${work.git.ref} -- ${work.git.url} ${work.git.dir}`];
    case "weights": {
      const w = work.weights;
      const total = w.files.reduce((n, f) => n + f.size, 0);
      if (w.source === "local") return [`use ${w.files.length} files (${formatBytes(total)}) in ${w.dir}`];
      return [
        `${w.repo}@${w.revision} (${w.commit?.slice(0, 12)}): ${w.files.length} files, ${formatBytes(total)}, ${formatBytes(w.bytesToDownload)} to download`,
        `into ${w.dir}`,
      ];
    }
    case "image": {
      const i = work.image;
      if (i.action === "present") return [`${i.ref} (present)`];
      if (i.action === "unknown") return [`${i.ref}: unknown — ${i.reason}`];
      if (i.action === "pull") return [`docker pull ${i.ref}`];
      return [`docker build --build-arg BASE_IMAGE=${i.base} -t ${i.ref} templates/build-image`];
    }
    case "container":
      return [dockerRunLine(work.container)];
    case "files": {
      const f = work.files;
      return [
        `fill ${f.paths.length} config.pbtxt from ${f.templates} into ${f.dir}, checked against the engine in ${f.engine}:`,
        ...Object.entries(f.values).map(([key, value]) => `  ${key}=${value}`),
      ];
    }
  }
}

/** The container as the `docker run` line a person could paste: the same image, argv, mounts and GPUs. */
export function dockerRunLine(spec: ContainerSpec): string {
  const parts = ["docker run --rm --init --shm-size=2g --ulimit memlock=-1 --ulimit stack=67108864"];
  if (spec.gpus === "all") parts.push("--gpus all");
  else if (spec.gpus !== "none") parts.push(`--gpus '"device=${spec.gpus.join(",")}"'`);
  for (const m of spec.mounts) parts.push(`-v ${quote(`${m.host}:${m.container}${m.readOnly ? ":ro" : ""}`)}`);
  for (const p of spec.ports ?? []) parts.push(`-p ${p.hostIp}:${p.host}:${p.container}`);
  for (const [k, v] of Object.entries(spec.env ?? {})) parts.push(`-e ${quote(`${k}=${v}`)}`);
  if (spec.user) parts.push(`--user ${spec.user}`);
  parts.push(`-w ${quote(spec.workingDir)}`, spec.image, ...spec.cmd.map(quote));
  return parts.join(" ");
}

function quote(arg: string): string {
  return /^[\w@%+=:,./-]+$/.test(arg) ? arg : `'${arg.replace(/'/g, `'\\''`)}'`;
}
