import { access } from "node:fs/promises";
import { join } from "node:path";
import { FailedError } from "../../common/errors.ts";
import { redactUrl } from "../../common/redact.ts";
import { buildFolder, stagingFor } from "../staging.ts";
import type { GitWork, Step, StepContext, Verdict } from "../step.ts";
import type { WorkdirPaths } from "../workdir.ts";

export interface RepoOut {
  readonly [key: string]: string | null;
  readonly dir: string;
  readonly commit: string | null;
}

interface RepoStepOptions {
  readonly id: "trtllm-repo" | "backend-repo";
  readonly title: string;
  readonly url: (ctx: StepContext) => string;
  readonly ref: (ctx: StepContext) => string;
  readonly dir: (paths: WorkdirPaths) => string;
  /** Files the later steps read: a checkout without them is the wrong repository or ref. */
  readonly mustContain: readonly string[];
}

/**
 * A shallow clone at a ref. It is made in a temporary sibling folder and renamed into place
 * only once complete, so a clone killed half-way never looks like a checkout (case 19).
 */
export function gitRepoStep(options: RepoStepOptions): Step<RepoOut, GitWork> {
  const { id, mustContain } = options;
  return {
    id,
    title: options.title,
    reads: [],
    async inputs(ctx) {
      // The URL as printed: credentials a user put in it never reach state.json.
      return { url: redactUrl(options.url(ctx)), ref: options.ref(ctx) };
    },
    async expectedOut(ctx) {
      return { dir: options.dir(ctx.paths), commit: null };
    },
    async plan(ctx) {
      // The URL as given: the settings refuse one with credentials in it, so it holds no secret.
      return { kind: "git", git: { url: options.url(ctx), ref: options.ref(ctx), dir: options.dir(ctx.paths) } };
    },
    async run(ctx, work) {
      const { url, ref, dir } = work.git;
      ctx.log.note(`cloning ${redactUrl(url)} at ${ref}`);
      let commit = "";
      // Each run clones into a folder of its own: a git that a `kill -9` of an earlier run
      // orphaned may still be writing into that run's folder (case 19).
      await buildFolder(dir, `${stagingFor(dir)}-${ctx.runId.slice(0, 8)}`, async (staging) => {
        ({ commit } = await ctx.clients.git.cloneAt({ url, ref, dir: staging, signal: ctx.signal, onLine: (line) => ctx.log.line(line) }));
        const missing = await missingFiles(staging, mustContain);
        if (missing.length > 0) {
          throw new FailedError(`${redactUrl(url)} at ${ref} has no ${missing.join(", ")}: is it the right repository and ref?`);
        }
      });
      ctx.log.note(`checked out ${commit}`);
      return { dir, commit };
    },
    async verify(ctx, out): Promise<Verdict> {
      const head = await ctx.clients.git.headCommit(out.dir);
      if (!head) return { ok: false, reason: `${out.dir} is not a git checkout any more` };
      if (head !== out.commit) return { ok: false, reason: `${out.dir} moved to ${head.slice(0, 12)}` };
      const missing = await missingFiles(out.dir, mustContain);
      return missing.length > 0 ? { ok: false, reason: `${missing.join(", ")} missing from ${out.dir}` } : { ok: true };
    },
  };
}

async function missingFiles(dir: string, files: readonly string[]): Promise<string[]> {
  const missing: string[] = [];
  for (const file of files) {
    try {
      await access(join(dir, file));
    } catch {
      missing.push(file);
    }
  }
  return missing;
}

const backendModels = ["preprocessing", "postprocessing", "tensorrt_llm", "tensorrt_llm_bls", "ensemble"] as const;

/** Files a checkout must have for the later steps (the export's Job checks them too). */
export const repoMustContain = {
  "trtllm-repo": ["examples/llama/convert_checkpoint.py", "examples/run.py"],
  "backend-repo": backendModels.map((m) => `all_models/inflight_batcher_llm/${m}/config.pbtxt`),
} as const;

export const trtllmRepoStep = gitRepoStep({
  id: "trtllm-repo",
  title: "Clone TensorRT-LLM",
  url: (ctx) => ctx.settings.trtllmRepoUrl,
  ref: (ctx) => ctx.settings.trtllmRepoRef,
  dir: (paths) => paths.trtllmRepo,
  mustContain: repoMustContain["trtllm-repo"],
});

export const backendRepoStep = gitRepoStep({
  id: "backend-repo",
  title: "Clone tensorrtllm_backend",
  url: (ctx) => ctx.settings.backendRepoUrl,
  ref: (ctx) => ctx.settings.backendRepoRef,
  dir: (paths) => paths.backendRepo,
  mustContain: repoMustContain["backend-repo"],
});
