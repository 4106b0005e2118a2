import type { Settings } from "../config/schema.ts";
import type { ContainerSpec } from "../docker/container-spec.ts";
import type { DockerClient, EngineInfo } from "../docker/docker-client.ts";
import type { GitClient } from "../git/git-client.ts";
import type { Hub } from "../hub/hub-client.ts";
import type { Json, StepInputs } from "./fingerprint.ts";
import type { StepId } from "./step-ids.ts";
import type { StepLog } from "./step-log.ts";
import type { WorkdirPaths } from "./workdir.ts";

export type { StepId } from "./step-ids.ts";

/** A clone of `url` at `ref` into `dir`. */
export interface GitWork {
  readonly kind: "git";
  readonly git: { readonly url: string; readonly ref: string; readonly dir: string };
}

/** The files of the model, and where they are or will be. */
export interface WeightsWork {
  readonly kind: "weights";
  readonly weights: {
    readonly repo: string;
    readonly revision: string;
    readonly commit: string | null;
    readonly source: "hub" | "local" | "cache";
    /** The folder the model's files are in (a snapshot of the cache, or --model-dir). */
    readonly dir: string;
    /** What the container steps mount (the model's whole cache folder, or --model-dir), and the model's folder in it. */
    readonly mountDir: string;
    readonly modelPath: string;
    /** `oid` (the blob's hash) for files from the Hub; local folders have none. */
    readonly files: readonly { readonly path: string; readonly size: number; readonly oid?: string }[];
    readonly bytesToDownload: number;
  };
}

export interface ImageWork {
  readonly kind: "image";
  readonly image: {
    readonly ref: string;
    /** present: nothing to do; pull: fetch it; build: build it from templates/ on `base`; unknown: no engine to ask. */
    readonly action: "present" | "pull" | "build" | "unknown";
    readonly base?: string;
    readonly recipe?: string;
    /** With `unknown`: why it cannot be told. */
    readonly reason?: string;
  };
}

/** A container that writes into `output.staging`, renamed to `output.dir` when `output.files` are all there. */
export interface ContainerWork {
  readonly kind: "container";
  readonly container: ContainerSpec;
  readonly output: { readonly dir: string; readonly staging: string; readonly files: readonly string[] };
}

/** The model repository: the backend's templates copied to `dir` and filled with `values`. */
export interface FilesWork {
  readonly kind: "files";
  readonly files: {
    readonly dir: string;
    readonly paths: readonly string[];
    /** The backend's `all_models/inflight_batcher_llm`, copied from. */
    readonly templates: string;
    /** Each `${…}` of the templates and its value (paths as Triton's container sees them). */
    readonly values: Readonly<Record<string, string>>;
    /** The engine the repository is checked against (its config.json). */
    readonly engine: string;
  };
}

/** What `plan` prints and what `run` executes: one object, so they cannot disagree. */
export type StepWork = GitWork | WeightsWork | ImageWork | ContainerWork | FilesWork;

export type Verdict = { readonly ok: true } | { readonly ok: false; readonly reason: string };

/** The clients a step may use. Passed in, never module singletons, so tests point them at the world. */
export interface Clients {
  readonly docker: DockerClient;
  readonly git: GitClient;
  readonly hub: Hub;
}

export interface StepContext {
  readonly settings: Settings;
  readonly paths: WorkdirPaths;
  readonly clients: Clients;
  readonly env: Readonly<Record<string, string | undefined>>;
  /** The outputs of a step this one reads: recorded when done, expected (from its inputs) when planning. */
  upstream<T extends Json = Json>(id: StepId): T;
  readonly log: StepLog;
  /** Ctrl-C: pass it on to every long operation. */
  readonly signal: AbortSignal;
  readonly runId: string;
  /** Labels every container of this step must carry (its run, workdir, role). */
  readonly containerLabels: Readonly<Record<string, string>>;
  /** Labels for a container of another role (the runner derives `containerLabels` from it). */
  labelsFor(role: string): Readonly<Record<string, string>>;
  /** Docker engine facts, fetched once per run when a step needs the engine. */
  engine(): Promise<EngineInfo>;
  /** `build --verify`: `verify` also does the checks that read every byte. */
  readonly deepVerify: boolean;
  /** Computes a value once per command (a Hub listing that inputs, plan and run all need). */
  memo<T>(key: string, compute: () => Promise<T>): Promise<T>;
  /** A step's recorded outputs, whatever its state now; undefined without a record. */
  recorded<T extends Json = Json>(id: StepId): Promise<T | undefined>;
}

export interface Step<Out extends Json = Json, Work extends StepWork = StepWork> {
  readonly id: StepId;
  /** The line a person sees: "Build the TensorRT engine". */
  readonly title: string;
  /** Steps whose outputs this one reads; their changes make it stale. */
  readonly reads: readonly StepId[];
  /** Everything that, if changed, makes the previous output wrong. No secrets, no side effects. */
  inputs(ctx: StepContext): Promise<StepInputs>;
  /**
   * A better reason than the generic per-input one for a change of inputs, e.g. "revision main
   * moved abc1234 → def5678 (2 files changed)"; undefined to use the generic one.
   */
  describeChange?(before: StepInputs, after: StepInputs): string | undefined;
  /** The outputs a run will produce, derived from the inputs, for planning the steps after it. */
  expectedOut(ctx: StepContext): Promise<Out>;
  /** The exact work, as data: everything `run` will do, nothing else. No writes, no containers. */
  plan(ctx: StepContext): Promise<Work>;
  /** Does exactly the work its `plan` returned. Must be safe to re-run after a crash half-way. */
  run(ctx: StepContext, work: Work): Promise<Out>;
  /** Cheap: are the recorded outputs still there and plausible? */
  verify(ctx: StepContext, out: Out): Promise<Verdict>;
  /**
   * Checks that take seconds and save a failed GPU run: tp vs GPUs, image present, weights
   * complete. Runs before any step of the run starts.
   */
  preflight?(ctx: StepContext): Promise<void>;
}
