import { createHash } from "node:crypto";
import { readdir, readFile } from "node:fs/promises";
import { join } from "node:path";
import { FailedError } from "../../common/errors.ts";
import { packageRoot } from "../../common/package-root.ts";
import { EngineUnreachableError } from "../../docker/docker-client.ts";
import { pullWithProgress } from "../../docker/pull-progress.ts";
import { labelKeys } from "../../docker/labels.ts";
import type { StepInputs } from "../fingerprint.ts";
import type { ImageWork, Step, StepContext } from "../step.ts";

export interface ImageOut {
  readonly [key: string]: string | null;
  readonly ref: string;
  /** The image id: downstream steps fingerprint this, not the tag, which can move. */
  readonly id: string | null;
}

/** templates/build-image, shipped with the package. */
export const recipeDir = join(packageRoot, "templates/build-image/");

/** Images named `llama3-trt/…` are built here from the recipe; any other name is pulled. */
export function isLocalRecipeImage(ref: string): boolean {
  return ref.startsWith("llama3-trt/");
}

export async function recipeHash(): Promise<string> {
  const hash = createHash("sha256");
  const files = (await readdir(recipeDir, { recursive: true })).sort();
  for (const file of files) {
    const content = await readFile(join(recipeDir, file)).catch(() => undefined);
    if (content) hash.update(file).update("\0").update(content);
  }
  return hash.digest("hex");
}

export const buildImageStep: Step<ImageOut, ImageWork> = {
  id: "build-image",
  title: "Get the TensorRT-LLM v0.8.0 image",
  reads: [],
  async inputs(ctx): Promise<StepInputs> {
    const ref = ctx.settings.buildImage;
    // The base and the recipe only matter when the image is built here.
    if (!isLocalRecipeImage(ref)) return { image: ref };
    return { image: ref, base: ctx.settings.buildBaseImage, recipe: await recipeHash() };
  },
  async expectedOut(ctx) {
    return { ref: ctx.settings.buildImage, id: null };
  },
  async plan(ctx) {
    const ref = ctx.settings.buildImage;
    let present;
    try {
      present = await ctx.clients.docker.inspectImage(ref);
    } catch (error) {
      if (!(error instanceof EngineUnreachableError)) throw error;
      return { kind: "image", image: { ref, action: "unknown", reason: `Docker not reachable at ${error.host} (${error.code})` } };
    }
    if (present) return { kind: "image", image: { ref, action: "present" } };
    if (!isLocalRecipeImage(ref)) return { kind: "image", image: { ref, action: "pull" } };
    return { kind: "image", image: { ref, action: "build", base: ctx.settings.buildBaseImage, recipe: "templates/build-image/Dockerfile" } };
  },
  async run(ctx, planned) {
    // Planned without an engine: ask it again now (the preflight has just reached it).
    const work = planned.image.action === "unknown" ? await this.plan(ctx) : planned;
    const { ref, action } = work.image;
    if (action === "unknown") throw new FailedError(`cannot tell whether ${ref} is present: ${work.image.reason}`);
    const docker = ctx.clients.docker;
    if (action === "pull") {
      await pull(ctx, ref);
    } else if (action === "build") {
      const base = ctx.settings.buildBaseImage;
      if (!(await docker.inspectImage(base))) await pull(ctx, base);
      ctx.log.note(`building ${ref} from templates/build-image on ${base}`);
      await docker.buildImage({
        contextDir: recipeDir,
        tag: ref,
        buildArgs: { BASE_IMAGE: base },
        labels: { [labelKeys.tool]: "1", "dev.llama3-trt.recipe": await recipeHash() },
        onLine: (line) => ctx.log.line(line),
        signal: ctx.signal,
      });
    }
    const image = await docker.inspectImage(ref);
    if (!image) throw new FailedError(`${ref} is still not present after the ${action}`);
    ctx.log.note(`${ref} is ${image.id}`);
    return { ref, id: image.id };
  },
  async verify(ctx, out) {
    const image = await ctx.clients.docker.inspectImage(out.ref);
    if (!image) return { ok: false, reason: `image ${out.ref} is gone` };
    if (image.id !== out.id) return { ok: false, reason: `image ${out.ref} now points to ${image.id.slice(7, 19)}` };
    return { ok: true };
  },
  async preflight(ctx) {
    // The engine must answer before anything else is attempted (case 25): fails in seconds.
    await ctx.engine();
  },
};

/** Pulls into the step's log, with what to do when the pull fails. */
function pull(ctx: StepContext, ref: string): Promise<void> {
  return pullWithProgress(ctx.clients.docker, ref, {
    log: ctx.log,
    signal: ctx.signal,
    hint: "Check the name and your registry login (`docker login`), or set build_image to a `llama3-trt/…` name to build it here from templates/.",
  });
}
