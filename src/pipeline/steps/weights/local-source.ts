import { readdir, stat } from "node:fs/promises";
import { join } from "node:path";
import { FailedError } from "../../../common/errors.ts";
import { neededForConversion } from "../../../hub/cache.ts";
import { missingForConversion, readListed, type ModelFiles, type WeightsSource } from "./source.ts";

/** `--model-dir`: Hugging Face weights already in a folder; nothing is fetched. */
export function localSource(dir: string): WeightsSource {
  return {
    kind: "local",
    async list(): Promise<ModelFiles> {
      const names = await readdir(dir).catch(() => {
        throw new FailedError(`--model-dir ${dir} cannot be read: does it exist?`);
      });
      const files = [];
      for (const name of names.filter(neededForConversion).sort()) files.push({ path: name, size: (await stat(join(dir, name))).size });
      const missing = await missingForConversion(files, dir);
      if (missing.length > 0) throw new FailedError(`--model-dir ${dir} lacks ${missing.join(", ")}: it must hold a Hugging Face checkpoint.`);
      return { commit: null, mountDir: dir, modelPath: ".", files };
    },
    bytesToDownload: async () => 0,
    preflight: async () => {},
    fetch: async () => {},
    readText: (model, name) => readListed(model, dir, name),
  };
}
