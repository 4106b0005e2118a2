import { mkdir, readFile } from "node:fs/promises";
import { createRequire } from "node:module";
import type { ParseError } from "jsonc-parser";
import { writeFileAtomicWith } from "../common/atomic-file.ts";
import { pausePoint } from "../common/test-hooks.ts";
import { UsageError } from "../common/errors.ts";
import type { Json, StepInputs } from "./fingerprint.ts";
import { type StepId, stepIds } from "./step-ids.ts";
import type { WorkdirPaths } from "./workdir.ts";

/** Bump when the record shape changes; an older tool refuses a newer file instead of misreading it. */
export const stateVersion = 1;

export interface StepRecord {
  readonly id: StepId;
  readonly fingerprint: string;
  /** Kept so that `plan` and `status` can say which input changed. */
  readonly inputs: StepInputs;
  /** What the step produced (paths, commit, image id…); its `verify` checks these still exist. */
  readonly out: Json;
  /** The work it did: the very object its `plan` returned and its `run` was given (plan = run). */
  readonly work?: Json;
  readonly finishedAt: string;
  readonly tool: { readonly version: string; readonly node: string };
  /**
   * How many times the step ran again because its outputs were found damaged (a truncated blob,
   * a missing engine file). Part of what the steps after it read: they were built from what was
   * damaged, so a repair rebuilds them too (reliability case 7a). Absent means 0.
   */
  readonly repairs?: number;
}

interface StateFile {
  readonly version: number;
  readonly steps: Partial<Record<StepId, StepRecord>>;
}

/**
 * `<workdir>/state.json`: finished steps only. A record is removed before its step runs and
 * written after its outputs verify, each time atomically, so a crash never looks done.
 */
export class StateStore {
  readonly #paths: WorkdirPaths;
  #steps: Partial<Record<StepId, StepRecord>>;

  private constructor(paths: WorkdirPaths, steps: Partial<Record<StepId, StepRecord>>) {
    this.#paths = paths;
    this.#steps = steps;
  }

  static async load(paths: WorkdirPaths): Promise<StateStore> {
    let text: string;
    try {
      text = await readFile(paths.state, "utf8");
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === "ENOENT") return new StateStore(paths, {});
      throw error;
    }
    return new StateStore(paths, parseState(text, paths.state));
  }

  get(id: StepId): StepRecord | undefined {
    return this.#steps[id];
  }

  all(): Partial<Record<StepId, StepRecord>> {
    return { ...this.#steps };
  }

  async put(record: StepRecord): Promise<void> {
    this.#steps = { ...this.#steps, [record.id]: record };
    await this.#save();
  }

  async remove(...ids: StepId[]): Promise<void> {
    if (!ids.some((id) => id in this.#steps)) return;
    const steps = { ...this.#steps };
    for (const id of ids) delete steps[id];
    this.#steps = steps;
    await this.#save();
  }

  async #save(): Promise<void> {
    await mkdir(this.#paths.root, { recursive: true });
    const file: StateFile = { version: stateVersion, steps: this.#steps };
    await writeFileAtomicWith(this.#paths.state, `${JSON.stringify(file, null, 2)}\n`, {
      mode: 0o644,
      beforeRename: () => pausePoint("state.json:before-rename"),
    });
  }
}

/**
 * A damaged state file is never read as "nothing done" (Terraform's empty-state failure): the
 * user is told which file and where, and what to do (case 23).
 */
export function parseState(text: string, path: string): Partial<Record<StepId, StepRecord>> {
  let data: unknown;
  try {
    data = JSON.parse(text);
  } catch (error) {
    const why = (error as Error).message.replace(/ in JSON at position \d+.*$/, "");
    throw new UsageError(
      `${path}:${jsonErrorAt(text)}: the state file is damaged (${why}). Nothing was run. ` +
        "Move it aside to rebuild from scratch; finished outputs will be checked and redone only where needed.",
    );
  }
  if (typeof data !== "object" || data === null || typeof (data as StateFile).version !== "number") {
    throw new UsageError(`${path} is not a llama3-trt state file. Nothing was run. Move it aside, or use another --workdir.`);
  }
  const file = data as StateFile;
  if (file.version > stateVersion) {
    throw new UsageError(
      `${path} was written by a newer llama3-trt (state version ${file.version}; this one reads ${stateVersion}). Upgrade llama3-trt.`,
    );
  }
  const steps: Partial<Record<StepId, StepRecord>> = {};
  for (const [id, record] of Object.entries(file.steps ?? {})) {
    // Records of steps this version does not know are dropped: they cannot be verified.
    if ((stepIds as readonly string[]).includes(id) && record && typeof record.fingerprint === "string") {
      steps[id as StepId] = record;
    }
  }
  return steps;
}

/** `line:col` of the first syntax error in `text`: V8's JSON.parse does not always say where. */
function jsonErrorAt(text: string): string {
  // Loaded only here, for a damaged file: every command reads state.json, few ever need this.
  const { parse: parseJsonc } = createRequire(import.meta.url)("jsonc-parser") as typeof import("jsonc-parser");
  const errors: ParseError[] = [];
  parseJsonc(text, errors, { disallowComments: true, allowTrailingComma: false });
  const offset = errors[0]?.offset ?? text.length;
  const lines = text.slice(0, offset).split("\n");
  return `${lines.length}:${(lines.at(-1)?.length ?? 0) + 1}`;
}
