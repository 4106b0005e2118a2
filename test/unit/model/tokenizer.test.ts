import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import llama3Tokenizer from "llama3-tokenizer-js";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { loadTokenizer, tokenizerFromJson, TokenizerError, type TextTokenizer } from "../../../src/model/tokenizer.ts";
import { realLlama3TokenizerJson } from "../../../world/llama3-tokenizer.ts";
import { tokenizerConfigJson, tokenizerJson } from "../../../world/server/llama3-files.ts";

describe("the model's tokenizer (@huggingface/tokenizers on tokenizer.json)", () => {
  let dir: string;
  let llama3: TextTokenizer;

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), "llama3-trt-tok-"));
    writeFileSync(join(dir, "tokenizer.json"), realLlama3TokenizerJson());
    writeFileSync(join(dir, "tokenizer_config.json"), tokenizerConfigJson());
    llama3 = await loadTokenizer(dir);
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  const texts = [
    "Hello world!",
    "How do I count to nine in French?",
    " the stand-in model keeps writing deterministic words",
    "naïve café 東京 123456 \n\n  indentation\tand tabs",
    "<|begin_of_text|><|start_header_id|>user<|end_header_id|>\n\nhi<|eot_id|>",
    "I'm sure they'll've done it, haven't they? 3.14159",
  ];

  it("encodes Llama 3's real vocabulary exactly as llama3-tokenizer-js, an independent implementation, does", () => {
    for (const text of texts) expect(llama3.encode(text), text).toEqual(llama3Tokenizer.encode(text, { bos: false, eos: false }));
    // Known ids of the real vocabulary: "Hello" 9906, " world" 1917, "!" 0.
    expect(llama3.encode("Hello world!")).toEqual([9906, 1917, 0]);
    expect(llama3.encode("<|eot_id|>")).toEqual([128009]);
  });

  it("adds no special tokens, decodes back to the text, and drops special tokens on decode unless asked", () => {
    expect(llama3.count("Hello world!")).toBe(3);
    expect(llama3.count("")).toBe(0);
    for (const text of texts.slice(0, 4)) expect(llama3.decode(llama3.encode(text))).toBe(text);
    const ids = llama3.encode("<|eot_id|>hi");
    expect(llama3.decode(ids)).toBe("hi");
    expect(llama3.decode(ids, { keepSpecial: true })).toBe("<|eot_id|>hi");
  });

  it("loads the world's small byte-level tokenizer too: one token a byte", () => {
    const small = tokenizerFromJson("world", tokenizerJson(), tokenizerConfigJson());
    expect(small.count("Hello é")).toBe(Buffer.byteLength("Hello é"));
    expect(small.decode(small.encode("Hello é"))).toBe("Hello é");
  });

  it("a folder without tokenizer.json, or a broken one, is a TokenizerError naming the file", async () => {
    const empty = mkdtempSync(join(tmpdir(), "llama3-trt-tok-empty-"));
    try {
      await expect(loadTokenizer(empty)).rejects.toThrow(new TokenizerError(`${join(empty, "tokenizer.json")} does not exist: the model folder has no tokenizer.json.`));
      writeFileSync(join(empty, "tokenizer.json"), "{ not json");
      await expect(loadTokenizer(empty)).rejects.toThrow(/^The tokenizer in .* does not load: /);
    } finally {
      rmSync(empty, { recursive: true, force: true });
    }
  });
});
