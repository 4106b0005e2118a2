import { createHash } from "node:crypto";
import { InterruptedError, StepFailedError, UsageError } from "../common/errors.ts";
import { pausePoint } from "../common/test-hooks.ts";
import { EngineUnreachableError } from "../docker/docker-client.ts";
import { canonicalJson, describeChanges, fingerprint, type Json, type StepInputs } from "./fingerprint.ts";
import type { StateStore, StepRecord } from "./state.ts";
import type { Verdict, Step, StepContext, StepWork } from "./step.ts";
import { type StepId, stepIds } from "./step-ids.ts";
import { StepLog } from "./step-log.ts";

/**
 * `unknown`: the step's check needs the Docker engine and none answers (plan and status on a
 * laptop without Docker). Its record is trusted for the steps after it, which are judged as usual.
 */
export type StepState = "done" | "stale" | "pending" | "unknown";

/** Done, or taken as done for the steps after it because its record cannot be checked right now. */
const usable = (state: StepState | undefined) => state === "done" || state === "unknown";

/** One step as `plan` and `status` show it. */
export interface StepStatus {
  readonly id: StepId;
  readonly title: string;
  readonly state: StepState;
  /** Why it is stale or pending, or "up to date". */
  readonly reason: string;
  readonly work: StepWork;
}

export interface Selection {
  readonly only?: StepId | undefined;
  readonly from?: StepId | undefined;
  /** `--force`: every selected step (true) or one step. */
  readonly force?: true | StepId | undefined;
}

/** The context shared by every step of a run, minus what the runner adds per step. */
export type BaseContext = Omit<StepContext, "upstream" | "log" | "containerLabels">;

export interface RunHooks {
  /** A selected step is about to be skipped or run. */
  onStepStart?(step: Step): void;
  onStepLine?(step: Step, line: string): void;
}

/** A step judged: its state and why, the inputs it was judged on, and what the steps after it read. */
interface Judgment {
  readonly state: StepState;
  readonly reason: string;
  /** Its outputs were there but failed their check: a repair. */
  readonly damaged: boolean;
  readonly inputs: StepInputs;
  readonly fingerprint: string;
  readonly known: Known;
}

interface Known {
  readonly state: StepState;
  readonly out: Json;
  /** Identifies this upstream for the steps that read it: its fingerprint and its outputs. */
  readonly hash: string;
}

/**
 * Orders the steps, judges each (done / stale with the changed input / pending), and runs the
 * ones that must run, recording a step only after its outputs verify.
 */
export class Pipeline {
  readonly #steps: readonly Step[];
  readonly #state: StateStore;
  readonly #base: BaseContext;
  readonly #version: string;

  constructor(steps: readonly Step[], state: StateStore, base: BaseContext, toolVersion: string) {
    this.#steps = steps;
    this.#state = state;
    this.#base = base;
    this.#version = toolVersion;
  }

  get steps(): readonly Step[] {
    return this.#steps;
  }

  /** `plan` and `status`: the state and the exact work of every step, without running anything. */
  async evaluate(): Promise<StepStatus[]> {
    const known = new Map<StepId, Known>();
    const statuses: StepStatus[] = [];
    for (const step of this.#steps) {
      const ctx = this.#context(step, known, new StepLog(this.#base.paths.log(step.id)));
      const judged = await this.#judge(step, ctx, known);
      known.set(step.id, judged.known);
      statuses.push({ id: step.id, title: step.title, state: judged.state, reason: judged.reason, work: await step.plan(ctx) });
    }
    return statuses;
  }

  /**
   * The recorded outputs of these steps checked by each step's own `verify`, without judging
   * their inputs (which may need the network): what `serve` and `ask --local` ask before they
   * use a build. A step without a record is reported as such.
   */
  async verifyRecorded(ids: readonly StepId[]): Promise<{ id: StepId; verdict: Verdict }[]> {
    const known = new Map<StepId, Known>();
    const results: { id: StepId; verdict: Verdict }[] = [];
    for (const step of this.#steps) {
      if (!ids.includes(step.id)) continue;
      const record = this.#state.get(step.id);
      const ctx = this.#context(step, known, new StepLog(this.#base.paths.log(step.id)), true);
      const verdict: Verdict = record ? await step.verify(ctx, record.out as never) : { ok: false, reason: `${step.id} is not built` };
      results.push({ id: step.id, verdict });
    }
    return results;
  }

  /** Runs what the selection asks for, in order. Returns what happened to each step. */
  async run(selection: Selection, hooks: RunHooks = {}): Promise<StepOutcome[]> {
    const outcomes: StepOutcome[] = [];
    for (const execute of await this.prepare(selection)) outcomes.push(await execute.run(hooks));
    return outcomes;
  }

  /**
   * Selects the steps, judges each, and runs the pre-flight checks (the ones that fail in
   * seconds) of the steps that will run before any step starts: a step not done, forced, or
   * after a step that will run. A build with nothing to do checks nothing (no GPU probe, no model
   * check). Returns one executor per step, to be run in order (a progress display wraps each in
   * its own task).
   */
  async prepare(selection: Selection): Promise<StepExecutor[]> {
    const selected = this.#select(selection);
    // Judged once here, as `plan` judges; an executor reuses its judgment until some step has run
    // (a step that ran changes what the steps after it read, so they are judged again).
    const judgedKnown = new Map<StepId, Known>();
    const judgments = new Map<StepId, Judgment>();
    const willRun = new Set<StepId>();
    for (const step of this.#steps) {
      const judged = await this.#judge(step, this.#context(step, judgedKnown, new StepLog(this.#base.paths.log(step.id))), judgedKnown);
      judgedKnown.set(step.id, judged.known);
      judgments.set(step.id, judged);
      const forced = selection.force === true || selection.force === step.id;
      if (selected.has(step.id) && (judged.state !== "done" || forced || step.reads.some((id) => willRun.has(id)))) willRun.add(step.id);
    }
    for (const step of this.#steps) {
      if (!willRun.has(step.id) || !step.preflight) continue;
      await step.preflight(this.#context(step, judgedKnown, new StepLog(this.#base.paths.log(step.id))));
    }
    // What the executors have run or skipped so far, in order: a step listed before a step it reads finds nothing.
    const known = new Map<StepId, Known>();
    let someStepRan = false;
    return this.#steps.map((step) => ({
      step,
      selected: selected.has(step.id),
      willRun: willRun.has(step.id),
      run: async (hooks: RunHooks = {}) => {
        const outcome = await this.#execute(step, selection, selected, known, hooks, someStepRan ? undefined : judgments.get(step.id));
        if (outcome.action === "ran") someStepRan = true;
        return outcome;
      },
    }));
  }

  async #execute(
    step: Step,
    selection: Selection,
    selected: Set<StepId>,
    known: Map<StepId, Known>,
    hooks: RunHooks,
    prepared: Judgment | undefined,
  ): Promise<StepOutcome> {
    if (this.#base.signal.aborted) throw new InterruptedError("interrupted");
    const log = new StepLog(this.#base.paths.log(step.id));
    const ctx = this.#context(step, known, log);
    const judged = prepared ?? (await this.#judge(step, ctx, known));
    const forced = selection.force === true || selection.force === step.id;

    if (!selected.has(step.id)) {
      if (!usable(judged.state) && this.#readBySelected(step.id, selected)) {
        throw new UsageError(
          `Step ${step.id} is ${judged.state} (${judged.reason}) and a selected step needs it. Run \`llama3-trt build\` without --only/--from, or \`--from ${step.id}\`.`,
        );
      }
      known.set(step.id, judged.known);
      return { id: step.id, action: "not-selected", state: judged.state, reason: judged.reason };
    }
    hooks.onStepStart?.(step);
    if (judged.state === "done" && !forced) {
      known.set(step.id, judged.known);
      return { id: step.id, action: "skipped", state: "done", reason: "up to date" };
    }

    const started = Date.now();
    // Outputs that were there but failed their check are a repair: count it, so that the steps
    // built from the damaged outputs are built again too.
    const previous = this.#state.get(step.id);
    const repairs = (previous?.repairs ?? 0) + (judged.damaged ? 1 : 0);
    // Before running: a crash from here on must never look done (wireit's delete-before-run).
    // A repair drops the records of the steps built from the damaged outputs with it: the count
    // above lives in this step's record, so a repair that fails or is interrupted would lose it,
    // and the next run would take those steps for done.
    await this.#state.remove(step.id, ...(judged.damaged ? this.#builtFrom(step.id) : []));
    await log.open((line) => hooks.onStepLine?.(step, line));
    let out: Json;
    let work: StepWork;
    try {
      log.note(`${step.id}: ${forced && judged.state === "done" ? "forced" : judged.reason}`);
      work = await step.plan(ctx);
      out = await step.run(ctx, work);
      const verdict = await step.verify(ctx, out);
      if (!verdict.ok) throw new StepFailedError(step.id, log.path, `its outputs did not verify: ${verdict.reason}`, log.tail());
    } catch (error) {
      if (this.#base.signal.aborted || error instanceof InterruptedError) {
        log.note("interrupted");
        await log.close();
        throw new InterruptedError(
          `interrupted during ${step.id}; finished steps are kept. Rerun \`llama3-trt build\` to continue from ${step.id}.`,
          { cause: error },
        );
      }
      log.note(`failed: ${error instanceof Error ? error.message : String(error)}`);
      await log.close();
      if (error instanceof StepFailedError) throw error;
      const summary = error instanceof Error ? error.message : String(error);
      throw new StepFailedError(step.id, log.path, summary, log.tail().slice(0, -1), { cause: error });
    }
    await pausePoint(`${step.id}:before-record`);
    const record: StepRecord = {
      id: step.id,
      fingerprint: judged.fingerprint,
      inputs: judged.inputs,
      out,
      work: work as unknown as Json,
      finishedAt: new Date().toISOString(),
      tool: { version: this.#version, node: process.versions.node },
      ...(repairs > 0 ? { repairs } : {}),
    };
    await this.#state.put(record);
    await pausePoint(`${step.id}:after-record`);
    const seconds = (Date.now() - started) / 1000;
    log.note(`done in ${seconds.toFixed(1)} s`);
    await log.close();
    known.set(step.id, { state: "done", out, hash: upstreamHash(record) });
    return { id: step.id, action: "ran", state: "done", reason: judged.reason, seconds };
  }

  async #judge(step: Step, ctx: StepContext, known: Map<StepId, Known>): Promise<Judgment> {
    const own = await step.inputs(ctx);
    const upstream: Record<string, Json> = {};
    for (const id of step.reads) upstream[`upstream.${id}`] = known.get(id)?.hash ?? "unknown";
    const inputs: StepInputs = { ...own, ...upstream };
    const fp = fingerprint(step.id, inputs);
    const record = this.#state.get(step.id);
    const notDone = step.reads.filter((id) => !usable(known.get(id)?.state));

    let state: StepState;
    let reason: string;
    let damaged = false;
    if (!record) {
      state = "pending";
      reason = notDone.length > 0 ? `after ${notDone.join(", ")}` : "not built yet";
    } else if (notDone.length > 0) {
      // Name this step's own changed inputs too: "dtype changed …; checkpoint must run first".
      const own = describeChanges(record.inputs, inputs).filter((r) => !r.startsWith("upstream "));
      state = "stale";
      reason = [...own, `${notDone.join(", ")} must run first`].join("; ");
    } else if (record.fingerprint !== fp) {
      state = "stale";
      reason = step.describeChange?.(record.inputs, inputs) ?? (describeChanges(record.inputs, inputs).join("; ") || "inputs changed");
    } else {
      try {
        const verdict = await step.verify(ctx, record.out as never);
        state = verdict.ok ? "done" : "stale";
        reason = verdict.ok ? "up to date" : verdict.reason;
        damaged = !verdict.ok;
      } catch (error) {
        if (!(error instanceof EngineUnreachableError)) throw error;
        state = "unknown";
        reason = `cannot tell: Docker not reachable at ${error.host} (${error.code})`;
      }
    }
    const out = usable(state) && record ? record.out : await step.expectedOut(ctx);
    const hash = usable(state) && record ? upstreamHash(record) : `${state}:${fp}`;
    return { state, reason, damaged, inputs, fingerprint: fp, known: { state, out, hash } satisfies Known };
  }

  #context(step: Step, known: Map<StepId, Known>, log: StepLog, planning = false): StepContext {
    return {
      ...this.#base,
      log,
      containerLabels: this.#base.labelsFor(step.id),
      upstream: <T extends Json = Json>(id: StepId): T => {
        if (!step.reads.includes(id)) throw new Error(`step ${step.id} reads ${id} without declaring it`);
        const entry = known.get(id);
        if (!entry && !planning) throw new Error(`step ${step.id} ran before ${id}`);
        return (entry?.out ?? null) as T;
      },
    };
  }

  #select(selection: Selection): Set<StepId> {
    if (selection.only && selection.from) throw new UsageError("--only and --from cannot be used together");
    if (selection.only) return new Set([selection.only]);
    const start = selection.from ? stepIds.indexOf(selection.from) : 0;
    return new Set(this.#steps.map((s) => s.id).filter((id) => stepIds.indexOf(id) >= start));
  }

  /** The steps that read `id`, directly or through other steps (which come after it in run order). */
  #builtFrom(id: StepId): StepId[] {
    const from = new Set<StepId>([id]);
    for (const s of this.#steps) if (s.reads.some((r) => from.has(r))) from.add(s.id);
    from.delete(id);
    return [...from];
  }

  /** Whether a selected step reads `id`, directly or through a chain of steps that are not selected. */
  #readBySelected(id: StepId, selected: Set<StepId>): boolean {
    return this.#steps.some((s) => selected.has(s.id) && s.reads.includes(id));
  }
}

export interface StepExecutor {
  readonly step: Step;
  readonly selected: boolean;
  /** Selected, and not done, forced or after a step that will run (as judged before any ran). */
  readonly willRun: boolean;
  run(hooks?: RunHooks): Promise<StepOutcome>;
}

export interface StepOutcome {
  readonly id: StepId;
  readonly action: "ran" | "skipped" | "not-selected";
  readonly state: StepState;
  readonly reason: string;
  readonly seconds?: number;
}

function upstreamHash(record: StepRecord): string {
  const hash = createHash("sha256").update(record.fingerprint).update(canonicalJson(record.out));
  // Only when there were repairs, so that the hashes of records from before the field stay valid.
  if (record.repairs) hash.update(`\0repairs:${record.repairs}`);
  return hash.digest("hex");
}

