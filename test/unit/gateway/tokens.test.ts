import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import llama3Tokenizer from "llama3-tokenizer-js";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { loadTokenizer, type TextTokenizer, TokenizerError } from "../../../src/model/tokenizer.ts";
import { llama3SpecialTokens, tokenizerConfigJson } from "../../../world/server/llama3-files.ts";
import { realLlama3TokenizerJson } from "../../../world/llama3-tokenizer.ts";

/**
 * The gateway's counts on the real Llama 3 vocabulary and merges, against llama3-tokenizer-js's
 * own encoder: two implementations of the same tokenizer must give the same ids.
 */
describe("token counts with the real Llama 3 tokenizer", () => {
  let dir: string;
  let counter: TextTokenizer;

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), "llama3-trt-tokens-"));
    writeFileSync(join(dir, "tokenizer.json"), realLlama3TokenizerJson());
    writeFileSync(join(dir, "tokenizer_config.json"), tokenizerConfigJson());
    counter = await loadTokenizer(dir);
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  const reference = (text: string) => llama3Tokenizer.encode(text, { bos: false, eos: false });

  it.each([
    "How do I count to nine in French?",
    "Un, deux, trois, quatre, cinq, six, sept, huit, neuf.",
    "  leading spaces, tabs\tand\nnew\r\nlines\n\n\n",
    "numbers 1234567 and 3.14159, 1e-9",
    "café naïve Ünïcödé ½ ² 日本語のテキスト 🎉👍🏽",
    "don't I'll we're they've she'd IT'S",
    "def f(x):\n    return {'a': [1, 2, 3]}  # code",
    "<|begin_of_text|><|start_header_id|>user<|end_header_id|>\n\nHi<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n",
  ])("%j", (text) => {
    expect(counter.encode(text)).toEqual(reference(text));
    expect(counter.count(text)).toBe(reference(text).length);
  });

  it("each special token 128000-128009 is one token with its own id", () => {
    const world = new Map(llama3SpecialTokens().map(({ id, content }) => [id, content]));
    for (let id = 128000; id <= 128009; id++) {
      const text = world.get(id) as string;
      expect(counter.encode(`a${text}b`), text).toEqual([64, id, 65]);
    }
    // The names both vocabularies share give the same ids in both implementations.
    for (const name of ["<|begin_of_text|>", "<|end_of_text|>", "<|start_header_id|>", "<|end_header_id|>", "<|eot_id|>", "<|reserved_special_token_0|>"]) {
      expect(counter.encode(name)).toEqual(reference(name));
    }
  });

  it("a folder without tokenizer.json is refused with what is missing", async () => {
    const empty = mkdtempSync(join(tmpdir(), "llama3-trt-tokens-"));
    try {
      await expect(loadTokenizer(empty)).rejects.toThrow(TokenizerError);
      await expect(loadTokenizer(empty)).rejects.toThrow(`${join(empty, "tokenizer.json")} does not exist: the model folder has no tokenizer.json.`);
    } finally {
      rmSync(empty, { recursive: true, force: true });
    }
  });
});
