import { readFile } from "node:fs/promises";
import { join } from "node:path";
import { FailedError } from "../../../common/errors.ts";
import type { StepContext } from "../../step.ts";

/** A file of the model: `oid` (its blob's hash) when it comes from the Hub or its cache. */
export interface ModelFile {
  readonly path: string;
  readonly size: number;
  readonly oid?: string;
}

/** The model's files and where the container steps find them. */
export interface ModelFiles {
  readonly commit: string | null;
  /** The folder that is mounted: the model's whole cache folder (snapshot links point into its blobs/), or --model-dir. */
  readonly mountDir: string;
  /** The model's folder inside it: `snapshots/<commit>`, or `.`. */
  readonly modelPath: string;
  readonly files: readonly ModelFile[];
}

/**
 * Where the weights come from. One implementation per source: the Hub (downloaded into the
 * Hugging Face cache), the cache alone (HF_HUB_OFFLINE), or a folder (--model-dir).
 */
export interface WeightsSource {
  readonly kind: "hub" | "cache" | "local";
  /**
   * The files and where they are or will be: no writes, and for the Hub no download. `recorded`
   * is what the weights step recorded last, if anything: what cannot have changed since (the
   * Hub's listing of the same commit) is taken from it instead of asked again.
   */
  list(recorded?: ModelFiles): Promise<ModelFiles>;
  /** What is still to fetch of them. */
  bytesToDownload(model: ModelFiles): Promise<number>;
  /** Before any step runs: that it can be done (the disk has room). */
  preflight(model: ModelFiles): Promise<void>;
  /** Makes every file be there (downloads what is missing); nothing to do for a folder. */
  fetch(model: ModelFiles, ctx: StepContext): Promise<void>;
  /**
   * One of the model's small files (config.json, generation_config.json, tokenizer_config.json)
   * as text, before any download: from disk when it is there, else from the Hub. Undefined when
   * the model has no such file.
   */
  readText(model: ModelFiles, name: SmallFile): Promise<string | undefined>;
}

/** The files the model is judged by before its weights are fetched. */
export const smallFiles = ["config.json", "generation_config.json", "tokenizer_config.json"] as const;
export type SmallFile = (typeof smallFiles)[number];

/** A small file bigger than this is no config (tokenizer_config.json of Llama 3 is 50 kB). */
export const smallFileMaxBytes = 4 * 1024 * 1024;

/** The file as text from the model's folder on disk, if the listing has it and it is there. */
export async function readListed(model: ModelFiles, dir: string, name: SmallFile): Promise<string | undefined> {
  const file = model.files.find((f) => f.path === name);
  if (!file) return undefined;
  if (file.size > smallFileMaxBytes) throw new FailedError(`${name} of the model is ${file.size} bytes: too big for a configuration file`);
  return readFile(join(dir, name), "utf8").catch(() => undefined);
}

/** Files conversion and the tokenizer cannot do without (besides the *.safetensors). */
export const requiredFiles = ["config.json", "tokenizer.json", "tokenizer_config.json"] as const;

/**
 * What the model lacks for conversion: the required files, any safetensors at all, and (when
 * its folder is on disk) the shards its index names. The one check, for every source.
 */
export async function missingForConversion(files: readonly ModelFile[], dirOnDisk?: string): Promise<string[]> {
  const names = new Set(files.map((f) => f.path));
  const missing: string[] = requiredFiles.filter((name) => !names.has(name));
  if (dirOnDisk !== undefined && names.has("model.safetensors.index.json")) {
    try {
      const index = JSON.parse(await readFile(join(dirOnDisk, "model.safetensors.index.json"), "utf8")) as { weight_map?: Record<string, string> };
      for (const shard of new Set(Object.values(index.weight_map ?? {}))) if (!names.has(shard)) missing.push(shard);
    } catch {
      missing.push("a readable model.safetensors.index.json");
    }
  }
  if (![...names].some((name) => name.endsWith(".safetensors"))) missing.push("*.safetensors weights");
  return missing;
}
