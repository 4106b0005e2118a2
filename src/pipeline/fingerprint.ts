import { createHash } from "node:crypto";

export type Json = null | boolean | number | string | readonly Json[] | { readonly [key: string]: Json };

/**
 * A step's inputs: everything that, if it changed, would make its previous output wrong, as a
 * flat record so that `plan` can name the one that changed. Upstream steps appear as
 * `upstream.<id>` with their fingerprint. Never a secret.
 */
export type StepInputs = Readonly<Record<string, Json>>;

/** JSON with object keys sorted at every depth: the same inputs always give the same text. */
export function canonicalJson(value: Json): string {
  if (value === null || typeof value !== "object") return JSON.stringify(value);
  if (Array.isArray(value)) return `[${value.map((v: Json) => canonicalJson(v)).join(",")}]`;
  const object = value as { readonly [key: string]: Json };
  const keys = Object.keys(object).sort();
  return `{${keys.map((k) => `${JSON.stringify(k)}:${canonicalJson(object[k] as Json)}`).join(",")}}`;
}

export function fingerprint(stepId: string, inputs: StepInputs): string {
  return createHash("sha256").update(canonicalJson({ step: stepId, inputs })).digest("hex");
}

/** Human reasons a step is stale: `dtype changed float16 → bfloat16`, `upstream checkpoint changed`. */
export function describeChanges(before: StepInputs, after: StepInputs): string[] {
  const reasons: string[] = [];
  const keys = [...new Set([...Object.keys(after), ...Object.keys(before)])];
  for (const key of keys) {
    const was = before[key];
    const now = after[key];
    if (canonicalJson(was ?? null) === canonicalJson(now ?? null) && key in before === key in after) continue;
    if (key.startsWith("upstream.")) {
      reasons.push(`upstream ${key.slice("upstream.".length)} changed`);
    } else if (!(key in before)) {
      reasons.push(`${key} is new (${show(now)})`);
    } else if (!(key in after)) {
      reasons.push(`${key} no longer applies`);
    } else {
      reasons.push(`${key} changed ${show(was)} → ${show(now)}`);
    }
  }
  return reasons;
}

function show(value: Json | undefined): string {
  if (value === undefined || value === null) return "none";
  if (typeof value === "string") return /^[0-9a-f]{40,64}$/.test(value) ? value.slice(0, 12) : value;
  const text = canonicalJson(value);
  return text.length > 60 ? `${text.slice(0, 57)}...` : text;
}
