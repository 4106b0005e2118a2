import { execFileSync } from "node:child_process";
import { mkdirSync, statfsSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { FailedError } from "../../../src/common/errors.ts";
import { diskMargin, ensureRoom, freeBytes } from "../../../src/hub/disk.ts";
import { tempDir } from "../../helpers/tmp.ts";

const MiB = 1024 * 1024;

describe("disk space before a download (case 15a)", () => {
  it("the margin is 1 % of the bytes, rounded up, plus 16 MiB", () => {
    expect([0, 1, 100, 150, 1e9].map(diskMargin)).toEqual([16 * MiB, 1 + 16 * MiB, 1 + 16 * MiB, 2 + 16 * MiB, 1e7 + 16 * MiB]);
  });

  it("free bytes of a folder, or of its nearest existing parent; other errors are thrown", async () => {
    using dir = tempDir();
    const fs = statfsSync(dir.path);
    expect(await freeBytes(join(dir.path, "not/yet/there"))).toBeCloseTo(fs.bavail * fs.bsize, -7);
    await expect(freeBytes("/etc/hostname/x")).rejects.toMatchObject({ code: "ENOTDIR" });
  });

  it("nothing to download needs no look at the disk at all", async () => {
    // A path statfs would fail on: proves it is not asked.
    await expect(ensureRoom("/etc/hostname/x", 0)).resolves.toBeUndefined();
    await expect(ensureRoom("/etc/hostname/x", -5)).resolves.toBeUndefined();
  });

  it("a download that cannot fit is refused, saying how much is needed and free, and what to do", async () => {
    const error = await ensureRoom(tmpdir(), 1e18).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(error).toBeInstanceOf(FailedError);
    expect((error as Error).message).toMatch(
      new RegExp(`^Not enough disk space for the model: need 1010000 TB in ${tmpdir()}, [\\d.]+ [kMGT]?B free\\. Free some space, or point HF_HUB_CACHE \\(or HF_HOME\\) at a larger disk\\.$`),
    );
  });

  it.skipIf(process.getuid?.() !== 0)("exactly enough fits; one byte more does not (a 64 MiB tmpfs)", async () => {
    using dir = tempDir();
    const small = join(dir.path, "small");
    mkdirSync(small);
    execFileSync("mount", ["-t", "tmpfs", "-o", "size=64m", "tmpfs", small]);
    try {
      expect(await freeBytes(small)).toBe(64 * MiB);
      // 49,833,314 + 498,334 (1 %) + 16 MiB = 64 MiB exactly.
      await expect(ensureRoom(join(small, "hub"), 49_833_314)).resolves.toBeUndefined();
      await expect(ensureRoom(join(small, "hub"), 49_833_315)).rejects.toThrow(
        `Not enough disk space for the model: need 67.1 MB in ${join(small, "hub")}, 67.1 MB free.`,
      );
    } finally {
      execFileSync("umount", [small]);
    }
  });
});
