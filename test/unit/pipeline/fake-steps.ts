import { existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { hostname } from "node:os";
import { basename, dirname, join } from "node:path";
import { resolveSettings } from "../../../src/config/resolve.ts";
import type { SettingKey, Settings } from "../../../src/config/schema.ts";
import type { DockerClient } from "../../../src/docker/docker-client.ts";
import { ownerLabels } from "../../../src/docker/labels.ts";
import type { GitClient } from "../../../src/git/git-client.ts";
import type { Json, StepInputs } from "../../../src/pipeline/fingerprint.ts";
import { type BaseContext, Pipeline } from "../../../src/pipeline/runner.ts";
import { StateStore, type StepRecord } from "../../../src/pipeline/state.ts";
import type { Hub } from "../../../src/hub/hub-client.ts";
import type { Clients, Step, StepId, StepWork } from "../../../src/pipeline/step.ts";
import { WorkdirPaths } from "../../../src/pipeline/workdir.ts";

/**
 * Fake steps for the runner's unit tests: each writes one small file into the workdir, records
 * what it was asked to do, and verifies its file the way a real step verifies its outputs. No
 * Docker, no network: the runner, the state store and the fingerprints are the real ones.
 */

export const toolVersion = "0.0.0-test";

/** What a fake step records as its output: the file it wrote and what the file must hold. */
export type FakeOut = { readonly file: string; readonly content: string };

export interface FakeSpec {
  readonly id: StepId;
  readonly reads?: readonly StepId[];
  /** The settings this step's inputs are made of, as a real step's are. */
  readonly uses?: readonly SettingKey[];
  readonly describeChange?: (before: StepInputs, after: StepInputs) => string | undefined;
  /** Give the step a pre-flight check (real steps have one only when a quick check saves a slow failure). */
  readonly preflight?: boolean;
  /** A step its plan reads without declaring it in `reads`: a bug the runner must catch. */
  readonly undeclared?: StepId;
}

/** What a test makes a fake step do from now on. */
export interface Behaviour {
  /** What `run` writes into the step's file, and records as its output. */
  content: string;
  /** `run` throws this instead of producing anything. */
  runThrows?: Error | undefined;
  /** Called at the start of `run`, e.g. to press Ctrl-C in the middle of the step. */
  duringRun?: (() => void) | undefined;
  /** `run` returns its output without writing the file: the outputs will not verify. */
  writeNothing?: boolean | undefined;
  /** `verify` throws this (an engine that does not answer). */
  verifyThrows?: Error | undefined;
  preflightThrows?: Error | undefined;
  /** `run` waits this long first, so that its duration is measurable. */
  runMs?: number | undefined;
}

/** One call the runner made to a fake step. */
export interface Call {
  readonly call: "preflight" | "plan" | "run" | "verify";
  readonly id: StepId;
  /** What `ctx.upstream` gave for each step it reads. */
  readonly upstream?: Readonly<Record<string, Json>>;
  /** For run: the work it was handed. */
  readonly work?: StepWork;
  /** For run: whether state.json still held this step's record while it ran. */
  readonly recordedWhileRunning?: boolean;
}

/** Dummy clients that throw when touched: the fake steps, and the runner itself, must not use them. */
function untouchable<T extends object>(name: string): T {
  return new Proxy({} as T, {
    get: (_target, key) => () => {
      throw new Error(`${name}.${String(key)} was called: the runner's tests use no ${name}`);
    },
  });
}

export const untouchableClients: Clients = {
  docker: untouchable<DockerClient>("docker"),
  git: untouchable<GitClient>("git"),
  hub: untouchable<Hub>("hub"),
};

/** A workdir in `root` with fake steps in it, and a way to build a pipeline as each command does. */
export class FakeWorkdir {
  readonly paths: WorkdirPaths;
  readonly calls: Call[] = [];
  readonly #specs: readonly FakeSpec[];
  readonly #behaviour = new Map<StepId, Behaviour>();

  constructor(root: string, specs: readonly FakeSpec[]) {
    this.paths = new WorkdirPaths(root);
    this.#specs = specs;
    for (const spec of specs) this.#behaviour.set(spec.id, { content: `${spec.id} v1` });
  }

  /** Changes what a step does from now on. */
  behave(id: StepId, change: Partial<Behaviour>): void {
    Object.assign(this.behaviour(id), change);
  }

  behaviour(id: StepId): Behaviour {
    const found = this.#behaviour.get(id);
    if (!found) throw new Error(`no fake step ${id}`);
    return found;
  }

  /** The file a step writes. */
  file(id: StepId): string {
    return join(this.paths.root, "out", `${id}.txt`);
  }

  /** The ids of the steps that got this call, in order. */
  called(call: Call["call"]): StepId[] {
    return this.calls.filter((c) => c.call === call).map((c) => c.id);
  }

  /** The records in state.json as a new command would read them. */
  onDisk(): Partial<Record<StepId, StepRecord>> {
    if (!existsSync(this.paths.state)) return {};
    return (JSON.parse(readFileSync(this.paths.state, "utf8")) as { steps: Partial<Record<StepId, StepRecord>> }).steps;
  }

  /**
   * The pipeline one command gets: state loaded from disk, the base context built the way
   * `Session.pipeline()` builds it, settings as resolved from defaults plus `settings`.
   */
  async pipeline(options: { settings?: Partial<Settings>; signal?: AbortSignal } = {}): Promise<Pipeline> {
    const resolved = resolveSettings({ flags: {}, env: {}, cwd: this.paths.root }).settings;
    const settings: Settings = { ...resolved, workdir: this.paths.root, ...options.settings };
    const memo = new Map<string, Promise<unknown>>();
    const runId = "00000000-test-run";
    const state = await StateStore.load(this.paths);
    const base: BaseContext = {
      settings,
      paths: this.paths,
      clients: untouchableClients,
      env: {},
      signal: options.signal ?? new AbortController().signal,
      runId,
      labelsFor: (role) => ownerLabels({ workdirId: this.paths.id, runId, role, pid: process.pid, host: hostname() }),
      engine: async () => {
        throw new Error("engine() was called: the runner's tests use no Docker engine");
      },
      deepVerify: false,
      memo: <T>(key: string, compute: () => Promise<T>) => {
        let value = memo.get(key) as Promise<T> | undefined;
        if (!value) {
          value = compute();
          memo.set(key, value);
        }
        return value;
      },
      recorded: async <T extends Json>(id: StepId) => state.get(id)?.out as T | undefined,
    };
    const steps = this.#specs.map((spec) => this.#step(spec));
    return new Pipeline(steps, state, base, toolVersion);
  }

  #step(spec: FakeSpec): Step<FakeOut> {
    const { id } = spec;
    const reads = spec.reads ?? [];
    const file = this.file(id);
    const seen = (ctx: { upstream(id: StepId): Json }) => Object.fromEntries(reads.map((r) => [r, ctx.upstream(r)]));
    const step: Step<FakeOut> = {
      id,
      title: `Fake ${id}`,
      reads,
      inputs: async (ctx) => Object.fromEntries((spec.uses ?? []).map((key) => [key, ctx.settings[key] as Json])),
      expectedOut: async () => ({ file, content: "(expected)" }),
      plan: async (ctx) => {
        if (spec.undeclared) ctx.upstream(spec.undeclared);
        this.calls.push({ call: "plan", id, upstream: seen(ctx) });
        return { kind: "files", files: { dir: dirname(file), paths: [basename(file)], templates: "", values: {}, engine: "" } };
      },
      run: async (ctx, work) => {
        const b = this.behaviour(id);
        this.calls.push({ call: "run", id, upstream: seen(ctx), work, recordedWhileRunning: this.onDisk()[id] !== undefined });
        ctx.log.line(`building ${id}`);
        if (b.runMs) await new Promise((resolve) => setTimeout(resolve, b.runMs));
        b.duringRun?.();
        if (b.runThrows) throw b.runThrows;
        if (!b.writeNothing) {
          mkdirSync(dirname(file), { recursive: true });
          writeFileSync(file, b.content);
        }
        return { file, content: b.content };
      },
      verify: async (ctx, out) => {
        this.calls.push({ call: "verify", id, upstream: seen(ctx) });
        const b = this.behaviour(id);
        if (b.verifyThrows) throw b.verifyThrows;
        if (!existsSync(out.file)) return { ok: false, reason: `${basename(out.file)} is missing` };
        const text = readFileSync(out.file, "utf8");
        return text === out.content ? { ok: true } : { ok: false, reason: `${basename(out.file)} holds "${text}", expected "${out.content}"` };
      },
    };
    if (spec.describeChange) step.describeChange = spec.describeChange;
    if (spec.preflight) {
      step.preflight = async (ctx) => {
        this.calls.push({ call: "preflight", id, upstream: seen(ctx) });
        const b = this.behaviour(id);
        if (b.preflightThrows) throw b.preflightThrows;
      };
    }
    return step;
  }
}
