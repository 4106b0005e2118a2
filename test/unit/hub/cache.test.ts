import { describe, expect, it } from "vitest";
import { blobLinkTarget, neededForConversion, repoFolder, unsafeRelativePath, validCommit, validOid } from "../../../src/hub/cache.ts";

describe("file names from a listing", () => {
  // huggingface_hub's UNSAFE_FILENAMES table (tests/test_local_folder.py), reliability case 18,
  // plus the empty name and a NUL byte; each refused for its own reason.
  it.each([
    ["../../../etc/passwd", "`..` segment"],
    ["folder/../../../etc/passwd", "`..` segment"],
    ["..\\..\\Windows\\evil", "`..` segment"],
    ["/etc/passwd", "absolute path"],
    ["C:\\Windows\\evil", "absolute path"],
    ["C:/Windows/evil", "absolute path"],
    ["D:relative\\evil", "drive letter"],
    ["D:relative", "drive letter"],
    ["\\\\attacker\\share\\evil", "absolute path"],
    ["\\evil", "absolute path"],
    ["folder/C:\\Windows\\evil", "drive letter"],
    ["folder/D:x", "drive letter"],
    ["folder/\\\\attacker\\share\\evil", "backslash (a Windows path separator)"],
    ["folder/\\evil", "backslash (a Windows path separator)"],
    ["..", "`..` segment"],
    ["", "empty name"],
    ["a\0b", "NUL byte"],
  ])("refuses %j (%s)", (path, reason) => {
    expect(unsafeRelativePath(path)).toBe(reason);
  });

  it.each([
    "weird but valid/name.txt",
    "a#b.json",
    "q?.txt",
    "100%.bin",
    "é.txt",
    "model-00001-of-00004.safetensors",
    "..hidden",
    "a..b",
    "ab:c.txt",
    "1:x.txt",
    "folder/1:x.txt",
    "folder/ab:c",
  ])("accepts %j", (path) => {
    expect(unsafeRelativePath(path)).toBeUndefined();
  });

  it("checks oids and commits, which become file and folder names: exactly 64 or 40 lowercase hex", () => {
    const sha256 = "a".repeat(64);
    const sha1 = "0".repeat(40);
    expect(validOid(sha256, true)).toBe(true);
    expect(validOid(sha1, false)).toBe(true);
    for (const bad of ["../../x", `../${sha256}`, `${sha256}/..`, sha1, "A".repeat(64)]) expect(validOid(bad, true), bad).toBe(false);
    for (const bad of [`../${sha1}`, `${sha1}/..`, sha256, "F".repeat(40)]) expect(validOid(bad, false), bad).toBe(false);
    expect(validCommit(sha1)).toBe(true);
    for (const bad of ["../x", `../${sha1}`, `${sha1}/..`, "A".repeat(40), sha256]) expect(validCommit(bad), bad).toBe(false);
  });
});

describe("the cache layout", () => {
  it("names the repo folder and links snapshots to blobs relatively", () => {
    expect(repoFolder("/c", "meta-llama/Meta-Llama-3-8B-Instruct")).toBe("/c/models--meta-llama--Meta-Llama-3-8B-Instruct");
    expect(blobLinkTarget("config.json", "abc")).toBe("../../blobs/abc");
    expect(blobLinkTarget("original/params.json", "abc")).toBe("../../../blobs/abc");
  });

  it("fetches only what conversion and the tokenizer need", () => {
    const listing = [
      "config.json", "generation_config.json", "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json",
      "model.safetensors.index.json", "model-00001-of-00004.safetensors", "original/consolidated.00.pth",
      "original/params.json", "original/tokenizer.model", "README.md", "LICENSE", ".gitattributes", "pytorch_model.bin",
      // Only the top level: a checkpoint in a sub-folder is not this model's.
      "sub/model.safetensors", "sub/config.json",
    ];
    expect(listing.filter(neededForConversion)).toEqual(listing.slice(0, 7));
  });
});
