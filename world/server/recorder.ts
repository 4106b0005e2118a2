/**
 * The invocation recorder: every stand-in program (trtllm-build, tritonserver, mpirun, pip ...)
 * POSTs `{tool, argv, cwd, time}` here before doing anything, so tests can tell which tools ran
 * with which arguments. Lines go to `<stateDir>/invocations.jsonl`; `GET /invocations` returns
 * them as a JSON array. The body is validated strictly: a stand-in that reports garbage must
 * fail loudly rather than make "tool X ran with Y" assertions pass by accident.
 *
 * Tests steer the stand-ins through the answer: `POST /behaviour` with
 * `{"tool": "trtllm-build", "behaviour": {"sleepSeconds": 60, "ignoreSigint": true}, "times": 1}`
 * makes the next run(s) of that tool get `{"ok": true, "behaviour": {...}}` back (the knobs are
 * listed in world/images/common/lib/llama3_trt_standin/record.py); `DELETE /behaviour` clears all.
 * The product controls the environment of what it runs, so knobs cannot travel in variables.
 */
import { appendFileSync, readFileSync } from "node:fs";
import type { Server } from "node:http";
import { BodyTooLargeError, createLoggedServer, readBody, sendJson } from "./http-util.ts";
import type { RequestLog } from "./request-log.ts";

export interface Invocation {
  readonly tool: string;
  readonly argv: readonly string[];
  readonly cwd: string;
  readonly time: string;
}

export function parseInvocation(value: unknown): Invocation | string {
  if (typeof value !== "object" || value === null || Array.isArray(value)) return "expected a JSON object";
  const { tool, argv, cwd, time, ...rest } = value as Record<string, unknown>;
  const extra = Object.keys(rest);
  if (extra.length > 0) return `unknown key(s): ${extra.join(", ")}`;
  if (typeof tool !== "string" || tool === "") return '"tool" must be a non-empty string';
  if (!Array.isArray(argv) || !argv.every((a): a is string => typeof a === "string")) return '"argv" must be a list of strings';
  if (typeof cwd !== "string") return '"cwd" must be a string';
  if (typeof time !== "string" || Number.isNaN(Date.parse(time))) return '"time" must be an ISO date string';
  return { tool, argv, cwd, time };
}

export function readInvocations(file: string): Invocation[] {
  let text: string;
  try {
    text = readFileSync(file, "utf8");
  } catch {
    return [];
  }
  return text
    .split("\n")
    .filter((line) => line.trim() !== "")
    .map((line) => JSON.parse(line) as Invocation);
}

/** Knobs a test set for the next runs of a tool; `times` undefined = until cleared. */
interface BehaviourRule {
  readonly behaviour: Record<string, unknown>;
  times: number | undefined;
}

const knobNames = new Set(["sleepSeconds", "exitCode", "oom", "ignoreSigint", "ignoreSigterm", "neverReady", "dieAtStart", "ttftMs", "itlMs", "maxInFlight"]);

export function createRecorderServer(invocationsFile: string, log: RequestLog): Server {
  const rules = new Map<string, BehaviourRule>();
  return createLoggedServer("recorder", log, async (ctx) => {
    if (ctx.rawPath === "/behaviour") {
      if (ctx.req.method === "DELETE") {
        rules.clear();
        return sendJson(ctx, 200, { ok: true });
      }
      if (ctx.req.method !== "POST") return sendJson(ctx, 405, { error: "use POST or DELETE" }, { Allow: "POST, DELETE" });
      const body = JSON.parse((await readBody(ctx.req)).toString("utf8")) as { tool?: unknown; behaviour?: unknown; times?: unknown };
      const unknown = Object.keys((body.behaviour ?? {}) as object).filter((k) => !knobNames.has(k));
      if (typeof body.tool !== "string" || typeof body.behaviour !== "object" || body.behaviour === null || unknown.length > 0) {
        return sendJson(ctx, 400, { error: `expected {tool, behaviour, times?} with knobs ${[...knobNames].join(", ")}` });
      }
      rules.set(body.tool, { behaviour: body.behaviour as Record<string, unknown>, times: typeof body.times === "number" ? body.times : undefined });
      return sendJson(ctx, 200, { ok: true });
    }
    if (ctx.rawPath !== "/invocations") return sendJson(ctx, 404, { error: "Not Found" });
    if (ctx.req.method === "GET") return sendJson(ctx, 200, readInvocations(invocationsFile));
    if (ctx.req.method !== "POST") return sendJson(ctx, 405, { error: "use GET or POST" }, { Allow: "GET, POST" });
    let invocation: Invocation | string;
    try {
      invocation = parseInvocation(JSON.parse((await readBody(ctx.req)).toString("utf8")));
    } catch (error) {
      if (error instanceof SyntaxError || error instanceof BodyTooLargeError) return sendJson(ctx, 400, { error: error.message });
      throw error;
    }
    if (typeof invocation === "string") return sendJson(ctx, 400, { error: invocation });
    // Synchronous append: one whole line per invocation, in arrival order.
    appendFileSync(invocationsFile, JSON.stringify(invocation) + "\n");
    const rule = rules.get(invocation.tool);
    if (rule && rule.times !== undefined && --rule.times <= 0) rules.delete(invocation.tool);
    sendJson(ctx, 201, rule ? { ok: true, behaviour: rule.behaviour } : { ok: true });
  });
}
