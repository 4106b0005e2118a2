/**
 * `bench --plot <file>`: the picture people compare deployments with, output-token throughput
 * against latency across the sweep (one point per load point, joined in sweep order). A
 * self-contained SVG: no script, no external font or stylesheet, opens in any browser.
 * Hand-written rather than a charting library: one scatter line of a few points does not need
 * a DOM or a canvas, and the file stays small and readable.
 */
import type { BenchReport } from "./report.ts";
import { loadLabel } from "./report.ts";

const width = 720;
const height = 440;
const margin = { left: 80, right: 30, top: 50, bottom: 60 };

const escape = (s: string) => s.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;").replace(/"/g, "&quot;");

/** Round tick steps (1, 2, 5 × 10^n) covering 0..max. */
export function ticks(max: number, count = 5): number[] {
  if (!(max > 0)) return [0, 1];
  const raw = max / count;
  const power = 10 ** Math.floor(Math.log10(raw));
  const step = ([1, 2, 5, 10].find((m) => m * power >= raw) ?? 10) * power;
  const out: number[] = [];
  for (let v = 0; v <= max + step * 1e-9; v += step) out.push(Number(v.toPrecision(12)));
  if ((out.at(-1) as number) < max) out.push(Number(((out.at(-1) as number) + step).toPrecision(12)));
  return out;
}

const label = (v: number) => (Math.abs(v) >= 1000 ? v.toFixed(0) : Number(v.toPrecision(3)).toString());

/** x: end-to-end latency p50 (ms); y: output tokens per second. Points with no completed request are left out. */
export function plotSvg(report: BenchReport): string {
  const points = report.points.filter((p) => p.e2e_ms.p50 !== null);
  const xs = ticks(Math.max(...points.map((p) => p.e2e_ms.p50 as number), 0));
  const ys = ticks(Math.max(...points.map((p) => p.output_tokens_per_s), 0));
  const xMax = xs.at(-1) as number;
  const yMax = ys.at(-1) as number;
  const plotW = width - margin.left - margin.right;
  const plotH = height - margin.top - margin.bottom;
  const x = (v: number) => margin.left + (v / xMax) * plotW;
  const y = (v: number) => margin.top + plotH - (v / yMax) * plotH;
  const f = (n: number) => n.toFixed(1);

  const title = `${report.target.model ?? report.target.url} (${report.target.api}): throughput vs latency`;
  const out: string[] = [
    `<?xml version="1.0" encoding="UTF-8"?>`,
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" font-family="sans-serif" font-size="12">`,
    `<title>${escape(title)}</title>`,
    `<desc>${escape(`llama3-trt bench, ${report.started_at}; input ${report.workload.input_len ? `${report.workload.input_len.mean} tokens` : report.workload.prompts}, output ${report.workload.output_len.mean} tokens`)}</desc>`,
    `<rect width="${width}" height="${height}" fill="white"/>`,
    `<text x="${width / 2}" y="24" text-anchor="middle" font-size="15" font-weight="bold">${escape(title)}</text>`,
    `<g class="grid" stroke="#ddd" stroke-width="1">`,
    ...xs.map((v) => `<line x1="${f(x(v))}" y1="${margin.top}" x2="${f(x(v))}" y2="${margin.top + plotH}"/>`),
    ...ys.map((v) => `<line x1="${margin.left}" y1="${f(y(v))}" x2="${margin.left + plotW}" y2="${f(y(v))}"/>`),
    `</g>`,
    `<g class="axes" stroke="#333" stroke-width="1.5"><line x1="${margin.left}" y1="${margin.top + plotH}" x2="${margin.left + plotW}" y2="${margin.top + plotH}"/><line x1="${margin.left}" y1="${margin.top}" x2="${margin.left}" y2="${margin.top + plotH}"/></g>`,
    `<g class="ticks" fill="#333">`,
    ...xs.map((v) => `<text x="${f(x(v))}" y="${margin.top + plotH + 18}" text-anchor="middle">${label(v)}</text>`),
    ...ys.map((v) => `<text x="${margin.left - 8}" y="${f(y(v) + 4)}" text-anchor="end">${label(v)}</text>`),
    `</g>`,
    `<text x="${margin.left + plotW / 2}" y="${height - 16}" text-anchor="middle">end-to-end latency p50 (ms)</text>`,
    `<text transform="translate(20 ${margin.top + plotH / 2}) rotate(-90)" text-anchor="middle">output tokens/s</text>`,
  ];
  if (points.length > 1) {
    out.push(`<polyline class="sweep" fill="none" stroke="#3366cc" stroke-width="2" points="${points.map((p) => `${f(x(p.e2e_ms.p50 as number))},${f(y(p.output_tokens_per_s))}`).join(" ")}"/>`);
  }
  out.push(`<g class="points">`);
  for (const p of points) {
    const cx = x(p.e2e_ms.p50 as number);
    const cy = y(p.output_tokens_per_s);
    const name = loadLabel(p);
    out.push(
      `<g class="point" data-load="${escape(name)}" data-e2e-p50-ms="${(p.e2e_ms.p50 as number).toFixed(3)}" data-output-tokens-per-s="${p.output_tokens_per_s.toFixed(3)}">` +
        `<circle cx="${f(cx)}" cy="${f(cy)}" r="5" fill="#3366cc"/>` +
        `<text x="${f(cx + 8)}" y="${f(cy - 8)}">${escape(name)}</text>` +
        `<title>${escape(`${name}: ${p.output_tokens_per_s.toFixed(1)} output tokens/s, e2e p50 ${(p.e2e_ms.p50 as number).toFixed(1)} ms, TTFT p50 ${p.ttft_ms.p50?.toFixed(1) ?? "-"} ms, ${p.errors} errors`)}</title></g>`,
    );
  }
  out.push(`</g>`, `</svg>`, ``);
  return out.join("\n");
}
