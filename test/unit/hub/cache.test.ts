import { describe, expect, it } from "vitest";
import { blobLinkTarget, neededForConversion, repoFolder, unsafeRelativePath, validCommit, validOid } from "../../../src/hub/cache.ts";

describe("file names from a listing", () => {
  // huggingface_hub's UNSAFE_FILENAMES table (tests/test_local_folder.py), reliability case 18.
  it.each([
    "../../../etc/passwd",
    "folder/../../../etc/passwd",
    "..\\..\\Windows\\evil",
    "/etc/passwd",
    "C:\\Windows\\evil",
    "C:/Windows/evil",
    "D:relative\\evil",
    "\\\\attacker\\share\\evil",
    "\\evil",
    "folder/C:\\Windows\\evil",
    "folder/\\\\attacker\\share\\evil",
    "folder/\\evil",
    "..",
  ])("refuses %j", (path) => {
    expect(unsafeRelativePath(path)).toBeDefined();
  });

  it.each(["weird but valid/name.txt", "a#b.json", "q?.txt", "100%.bin", "é.txt", "model-00001-of-00004.safetensors", "..hidden", "a..b"])(
    "accepts %j",
    (path) => {
      expect(unsafeRelativePath(path)).toBeUndefined();
    },
  );

  it("checks oids and commits, which become file and folder names", () => {
    expect(validOid("a".repeat(64), true)).toBe(true);
    expect(validOid("../../x", true)).toBe(false);
    expect(validOid("a".repeat(40), false)).toBe(true);
    expect(validOid("a".repeat(64), false)).toBe(false);
    expect(validCommit("../x")).toBe(false);
    expect(validCommit("0".repeat(40))).toBe(true);
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
    ];
    expect(listing.filter(neededForConversion)).toEqual(listing.slice(0, 7));
  });
});
