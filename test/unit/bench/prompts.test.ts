import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { drawLength, PromptMaker, readPromptFile, seededRandom, syntheticPrompt } from "../../../src/bench/prompts.ts";
import { tokenizerFromJson } from "../../../src/model/tokenizer.ts";
import { realLlama3TokenizerJson } from "../../../world/llama3-tokenizer.ts";
import { tokenizerConfigJson, tokenizerJson } from "../../../world/server/llama3-files.ts";

const llama3 = tokenizerFromJson("llama3", realLlama3TokenizerJson(), tokenizerConfigJson());
const bytes = tokenizerFromJson("bytes", tokenizerJson(), tokenizerConfigJson());

describe("synthetic prompts", () => {
  it("are exactly the asked length in the model's own tokens, for Llama 3's vocabulary and for a byte tokenizer", () => {
    for (const tokenizer of [llama3, bytes]) {
      for (const tokens of [1, 7, 128, 1000]) {
        const prompt = syntheticPrompt(tokenizer, tokens, seededRandom(tokens));
        expect(prompt.inputTokens, `${tokenizer.dir} ${tokens}`).toBe(tokens);
        expect(tokenizer.count(prompt.text)).toBe(tokens);
      }
    }
  });

  it("are the same for the same seed and index, and differ between requests", () => {
    const a = new PromptMaker(llama3, { kind: "synthetic", input: { mean: 64, stddev: 0 } }, { mean: 32, stddev: 0 }, 7);
    const b = new PromptMaker(llama3, { kind: "synthetic", input: { mean: 64, stddev: 0 } }, { mean: 32, stddev: 0 }, 7);
    expect(a.prompt(3)).toEqual(b.prompt(3));
    expect(a.prompt(3).text).not.toBe(a.prompt(4).text);
    expect(a.prompt(3)).toMatchObject({ inputTokens: 64, outputLen: 32 });
  });

  it("spread normally around the mean when asked, never below 1", () => {
    const random = seededRandom(1);
    const lengths = Array.from({ length: 2000 }, () => drawLength({ mean: 100, stddev: 20 }, random));
    const mean = lengths.reduce((s, v) => s + v, 0) / lengths.length;
    const sd = Math.sqrt(lengths.reduce((s, v) => s + (v - mean) ** 2, 0) / lengths.length);
    expect(mean).toBeGreaterThan(97);
    expect(mean).toBeLessThan(103);
    expect(sd).toBeGreaterThan(17);
    expect(sd).toBeLessThan(23);
    expect(Math.min(...Array.from({ length: 500 }, () => drawLength({ mean: 2, stddev: 50 }, random)))).toBe(1);
    expect(drawLength({ mean: 5, stddev: 0 }, random)).toBe(5);
  });
});

describe("prompts from a JSONL file", () => {
  it("reads strings, {text} and {prompt}, skips blank lines, and counts each in tokens", async () => {
    const dir = mkdtempSync(join(tmpdir(), "llama3-trt-prompts-"));
    try {
      const file = join(dir, "p.jsonl");
      writeFileSync(file, '"Hello world!"\n\n{"text": "How do I count to nine in French?"}\r\n{"prompt": "Bonjour"}\n');
      const texts = await readPromptFile(file);
      expect(texts).toEqual(["Hello world!", "How do I count to nine in French?", "Bonjour"]);
      const maker = new PromptMaker(llama3, { kind: "file", path: file, texts }, { mean: 16, stddev: 0 }, 0);
      expect(maker.prompt(0)).toEqual({ text: "Hello world!", inputTokens: 3, outputLen: 16 });
      expect(maker.prompt(3).text).toBe("Hello world!");

      writeFileSync(file, '"ok"\n{"text": 3}\n');
      await expect(readPromptFile(file)).rejects.toThrow(`${file}:2 has no prompt`);
      writeFileSync(file, "not json\n");
      await expect(readPromptFile(file)).rejects.toThrow(`${file}:1 is not JSON`);
      writeFileSync(file, "\n\n");
      await expect(readPromptFile(file)).rejects.toThrow("has no prompts");
      await expect(readPromptFile(join(dir, "missing.jsonl"))).rejects.toThrow("(ENOENT)");
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
