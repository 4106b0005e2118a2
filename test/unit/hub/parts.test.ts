import { createHash } from "node:crypto";
import { existsSync, readdirSync, readFileSync, statSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { hashFile, readParts, removeParts, sidecarOf, splitIntoRanges, startParts } from "../../../src/hub/parts.ts";
import { tempDir } from "../../helpers/tmp.ts";

describe("splitting a file into ranges", () => {
  it("only files of at least two ranges are split; the last range takes the rest", () => {
    expect(splitIntoRanges(19, 10)).toBeUndefined();
    expect(splitIntoRanges(20, 10)).toEqual([
      { start: 0, end: 10 },
      { start: 10, end: 20 },
    ]);
    expect(splitIntoRanges(21, 10)).toEqual([
      { start: 0, end: 10 },
      { start: 10, end: 20 },
      { start: 20, end: 21 },
    ]);
    expect(splitIntoRanges(100, 0)).toBeUndefined();
    expect(splitIntoRanges(100, -10)).toBeUndefined();
  });
});

describe("the progress sidecar", () => {
  const partial = (dir: string) => join(dir, "abc.host-1-x.incomplete");

  it("lives beside the partial", () => {
    expect(sidecarOf("/c/blobs/abc.incomplete")).toBe("/c/blobs/abc.incomplete.parts");
  });

  it("is trusted only when it fits this file byte for byte", async () => {
    using dir = tempDir();
    const path = partial(dir.path);
    const write = (record: unknown) => writeFileSync(sidecarOf(path), typeof record === "string" ? record : JSON.stringify(record));
    const good = { size: 25, partBytes: 10, done: [10, 3, 0] };
    write(good);
    expect(await readParts(path, 25, 10)).toEqual(good);
    for (const bad of [
      { ...good, size: 26 },
      { ...good, partBytes: 5 },
      { ...good, done: [10, 3] },
      { ...good, done: [10, 3, 0, 0] },
      { ...good, done: [10, 3.5, 0] },
      { ...good, done: [10, -1, 0] },
      { ...good, done: [11, 0, 0] },
      { ...good, done: [10, 10, 6] },
      "{ not json",
    ]) {
      write(bad);
      expect(await readParts(path, 25, 10), JSON.stringify(bad)).toBeUndefined();
    }
    // The last range may be done exactly.
    write({ ...good, done: [10, 10, 5] });
    expect(await readParts(path, 25, 10)).toEqual({ ...good, done: [10, 10, 5] });
    // A file too small to split has no ranges to fit.
    write({ size: 15, partBytes: 10, done: [10, 5] });
    expect(await readParts(path, 15, 10)).toBeUndefined();
    await removeParts(path);
    expect(existsSync(sidecarOf(path))).toBe(false);
    expect(await readParts(path, 25, 10)).toBeUndefined();
    await expect(removeParts(path)).resolves.toBeUndefined();
  });

  it("a new ranged partial is full length with nothing done; keepPrefix keeps the bytes there", async () => {
    using dir = tempDir();
    const path = partial(dir.path);
    const fds = readdirSync("/proc/self/fd").length;
    writeFileSync(path, "0123456789abcdefghijklmnopqrstuvwxyz");
    expect(await startParts(path, 25, 10)).toEqual({ size: 25, partBytes: 10, done: [0, 0, 0] });
    expect(readFileSync(path).equals(Buffer.alloc(25))).toBe(true);
    expect(JSON.parse(readFileSync(sidecarOf(path), "utf8"))).toEqual({ size: 25, partBytes: 10, done: [0, 0, 0] });

    writeFileSync(path, "0123456789abc");
    await startParts(path, 25, 10, true);
    expect(readFileSync(path).equals(Buffer.concat([Buffer.from("0123456789abc"), Buffer.alloc(12)]))).toBe(true);
    expect(statSync(path).size).toBe(25);
    // Nothing left open.
    expect(readdirSync("/proc/self/fd").length).toBe(fds);
  });
});

describe("hashFile", () => {
  it("hashes the whole file", async () => {
    using dir = tempDir();
    const bytes = Buffer.alloc(3 * 1024 * 1024 + 7, 7);
    writeFileSync(join(dir.path, "f"), bytes);
    expect(await hashFile(join(dir.path, "f"), createHash("sha256"))).toBe(createHash("sha256").update(bytes).digest("hex"));
  });
});
