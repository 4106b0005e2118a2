import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { renderConfigFile, renderSettingsTable } from "../../../src/config/init-template.ts";
import { resolveSettings } from "../../../src/config/resolve.ts";
import { envName, fileKey, settingKeys, settingsSchema } from "../../../src/config/schema.ts";
import { tempDir } from "../../helpers/tmp.ts";

describe("the file init writes", () => {
  it("loads back as exactly the defaults, every key read from the file", () => {
    using dir = tempDir();
    writeFileSync(join(dir.path, "llama3-trt.yaml"), renderConfigFile());
    const { settings, sources } = resolveSettings({ flags: {}, env: {}, cwd: dir.path });
    for (const key of settingKeys) {
      expect(sources[key], key).toBe("file");
      if (key !== "workdir") expect(settings[key], key).toEqual(settingsSchema[key].default);
    }
  });

  it("puts each key under a comment with its description and environment name", () => {
    const lines = renderConfigFile().split("\n");
    for (const key of settingKeys) {
      const at = lines.findIndex((line) => line.startsWith(`${fileKey(key)}:`));
      expect(at, key).toBeGreaterThan(0);
      expect(lines[at - 1]).toContain(settingsSchema[key].description);
      expect(lines[at - 1]).toContain(envName(key));
    }
  });
});

describe("the settings table", () => {
  it("has one row per setting", () => {
    const rows = renderSettingsTable().split("\n").slice(2);
    expect(rows).toHaveLength(settingKeys.length);
    expect(rows.find((r) => r.startsWith("| `max_batch_size`"))).toBe(
      "| `max_batch_size` | `--max-batch-size` | `LLAMA3_TRT_MAX_BATCH_SIZE` | `64` | largest batch the engine and Triton accept |",
    );
  });
});
