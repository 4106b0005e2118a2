/**
 * `bench --compare a.json b.json`: what changed between two runs: the deployment and workload
 * settings that differ, and per load point present in both the main figures side by side with
 * b/a. Pure, apart from reading the two files.
 */
import { readFile } from "node:fs/promises";
import { UsageError } from "../common/errors.ts";
import { loadLabel, type BenchReport, type PointReport } from "./report.ts";
import { benchFormat } from "./report.ts";

export interface SettingDifference {
  readonly key: string;
  readonly a: unknown;
  readonly b: unknown;
}

export interface MetricComparison {
  readonly a: number | null;
  readonly b: number | null;
  /** b / a, or null when either is missing or a is 0. */
  readonly ratio: number | null;
}

export interface PointComparison {
  readonly load: string;
  readonly metrics: Readonly<Record<ComparedMetric, MetricComparison>>;
}

export interface Comparison {
  readonly a: string;
  readonly b: string;
  readonly settings: readonly SettingDifference[];
  readonly points: readonly PointComparison[];
  /** Load points only one run has. */
  readonly unmatched: readonly string[];
}

const compared = {
  ttft_p50_ms: (p: PointReport) => p.ttft_ms.p50,
  ttft_p99_ms: (p: PointReport) => p.ttft_ms.p99,
  itl_p50_ms: (p: PointReport) => p.itl_ms.p50,
  tpot_mean_ms: (p: PointReport) => p.tpot_ms.mean,
  e2e_p50_ms: (p: PointReport) => p.e2e_ms.p50,
  e2e_p99_ms: (p: PointReport) => p.e2e_ms.p99,
  requests_per_s: (p: PointReport) => p.requests_per_s,
  output_tokens_per_s: (p: PointReport) => p.output_tokens_per_s,
  errors: (p: PointReport) => p.errors,
} as const;
export type ComparedMetric = keyof typeof compared;

export async function readReport(path: string): Promise<BenchReport> {
  const text = await readFile(path, "utf8").catch((error: NodeJS.ErrnoException) => {
    throw new UsageError(`Cannot read ${path} (${error.code ?? error.message}). Pass two files written by \`llama3-trt bench --json > file\`.`, { cause: error });
  });
  let doc: unknown;
  try {
    doc = JSON.parse(text);
  } catch (error) {
    throw new UsageError(`${path} is not JSON: ${(error as Error).message}`, { cause: error });
  }
  if (typeof doc !== "object" || doc === null || (doc as { format?: unknown }).format !== benchFormat || !Array.isArray((doc as { points?: unknown }).points)) {
    throw new UsageError(`${path} is not a bench result (no "format": "${benchFormat}"). Write one with \`llama3-trt bench --json > ${path}\`.`);
  }
  return doc as BenchReport;
}

/** Flattened `deployment`, `workload` and `target` of a report, for a key-by-key diff. */
function settingsOf(r: BenchReport): Map<string, unknown> {
  const out = new Map<string, unknown>();
  out.set("target.api", r.target.api);
  out.set("target.url", r.target.url);
  out.set("target.model", r.target.model);
  for (const [k, v] of Object.entries(r.deployment)) out.set(`deployment.${k}`, v);
  for (const [k, v] of Object.entries(r.workload)) out.set(`workload.${k}`, typeof v === "object" && v !== null ? JSON.stringify(v) : v);
  return out;
}

export function compareReports(a: BenchReport, b: BenchReport, names: { a: string; b: string }): Comparison {
  const sa = settingsOf(a);
  const sb = settingsOf(b);
  const settings: SettingDifference[] = [];
  for (const key of [...new Set([...sa.keys(), ...sb.keys()])].sort()) {
    const va = sa.get(key);
    const vb = sb.get(key);
    if (JSON.stringify(va) !== JSON.stringify(vb)) settings.push({ key, a: va ?? null, b: vb ?? null });
  }
  const byLoad = new Map(b.points.map((p) => [loadLabel(p), p]));
  const points: PointComparison[] = [];
  const unmatched: string[] = [];
  for (const pa of a.points) {
    const load = loadLabel(pa);
    const pb = byLoad.get(load);
    if (!pb) {
      unmatched.push(`${load} (only in ${names.a})`);
      continue;
    }
    byLoad.delete(load);
    const metrics = {} as Record<ComparedMetric, MetricComparison>;
    for (const [name, get] of Object.entries(compared) as [ComparedMetric, (p: PointReport) => number | null][]) {
      const va = get(pa);
      const vb = get(pb);
      metrics[name] = { a: va, b: vb, ratio: va === null || vb === null || va === 0 ? null : vb / va };
    }
    points.push({ load, metrics });
  }
  for (const load of byLoad.keys()) unmatched.push(`${load} (only in ${names.b})`);
  return { a: names.a, b: names.b, settings, points, unmatched };
}

/** The comparison as text: settings that differ, then a table per load point. */
export function comparisonText(c: Comparison): string {
  const lines: string[] = [`a: ${c.a}`, `b: ${c.b}`, ""];
  if (c.settings.length === 0) lines.push("Same deployment and workload settings.");
  else {
    lines.push("Settings that differ:");
    for (const d of c.settings) lines.push(`  ${d.key}: ${JSON.stringify(d.a)} → ${JSON.stringify(d.b)}`);
  }
  const show = (v: number | null) => (v === null ? "-" : Math.abs(v) >= 100 ? v.toFixed(0) : v.toFixed(2));
  for (const p of c.points) {
    lines.push("", `${p.load}:`, `  ${"metric".padEnd(20)}${"a".padStart(10)}${"b".padStart(10)}${"b/a".padStart(8)}`);
    for (const [name, m] of Object.entries(p.metrics)) {
      lines.push(`  ${name.padEnd(20)}${show(m.a).padStart(10)}${show(m.b).padStart(10)}${(m.ratio === null ? "-" : `${m.ratio.toFixed(2)}x`).padStart(8)}`);
    }
  }
  if (c.unmatched.length > 0) lines.push("", `Not compared: ${c.unmatched.join(", ")}.`);
  return lines.join("\n");
}
