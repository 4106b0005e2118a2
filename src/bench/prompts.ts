/**
 * What `bench` sends: synthetic prompts of a given length in the model's own tokens, or the
 * prompts of a JSONL file. Deterministic for a seed, so two runs send the same workload.
 */
import { readFile } from "node:fs/promises";
import { UsageError } from "../common/errors.ts";
import type { TextTokenizer } from "../model/tokenizer.ts";

export interface BenchPrompt {
  readonly text: string;
  /** Its length in the model's tokens. */
  readonly inputTokens: number;
  /** How many tokens to ask for. */
  readonly outputLen: number;
}

export interface LengthSpec {
  readonly mean: number;
  /** Standard deviation of a normal spread around the mean; 0 = every request the same. */
  readonly stddev: number;
}

/** Where the prompts come from. */
export type PromptSource = { readonly kind: "synthetic"; readonly input: LengthSpec } | { readonly kind: "file"; readonly path: string; readonly texts: readonly string[] };

/** mulberry32: a small seeded generator; Math.random cannot be seeded and would change the workload per run. */
export function seededRandom(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** A length drawn from a normal distribution (Box-Muller), rounded, at least 1. */
export function drawLength(spec: LengthSpec, random: () => number): number {
  if (spec.stddev === 0) return spec.mean;
  const u = 1 - random();
  const v = random();
  const normal = Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * v);
  return Math.max(1, Math.round(spec.mean + spec.stddev * normal));
}

/**
 * Plain English words (written for this tool) that prompts are drawn from: words of one or two
 * tokens in most tokenizers, as GenAI-Perf's synthetic prompts are drawn from a text corpus.
 */
const words = (
  "the engine holds a cache of keys and values for every token it has seen so that each new token costs " +
  "only one step through the layers while the batch grows until the memory of the device runs out and " +
  "requests wait in a queue for a free slot then the server streams each word back as soon as it is ready " +
  "people measure how long the first word takes and how fast the rest follow because a fast start with a " +
  "slow finish feels different from a slow start with a fast finish river mountain lantern harbour " +
  "meadow copper violin garden winter orchard signal bridge candle forest quiet morning evening market " +
  "station letter number window music paper silver yellow purple thunder pebble island compass"
).split(" ");

/** Deterministic text of about `count` words, starting from a random place in the word list. */
function wordText(count: number, random: () => number): string {
  const out: string[] = [];
  for (let i = 0; i < count; i++) out.push(words[Math.floor(random() * words.length)] as string);
  return out.join(" ");
}

/**
 * A prompt exactly `tokens` long in this tokenizer: words until there are enough tokens, cut to
 * the length in token ids and decoded. Decoding a cut can re-encode one token longer or shorter
 * at the seam, so the cut moves until the text counts right (or the nearest length is kept: the
 * count recorded is the text's own).
 */
export function syntheticPrompt(tokenizer: TextTokenizer, tokens: number, random: () => number): { text: string; inputTokens: number } {
  let count = Math.max(8, tokens);
  let ids = tokenizer.encode(wordText(count, random));
  while (ids.length < tokens) {
    count *= 2;
    ids = tokenizer.encode(wordText(count, random));
  }
  let best = { text: "", inputTokens: 0, off: Number.POSITIVE_INFINITY };
  for (let cut = tokens; cut >= Math.max(1, tokens - 4); cut--) {
    const text = tokenizer.decode(ids.slice(0, cut));
    const inputTokens = tokenizer.count(text);
    const off = Math.abs(inputTokens - tokens);
    if (off < best.off) best = { text, inputTokens, off };
    if (off === 0) break;
  }
  return { text: best.text, inputTokens: best.inputTokens };
}

/** The prompts of a JSONL file: one a line, a JSON string or an object with `text` (GenAI-Perf's input file) or `prompt` (vLLM's). */
export async function readPromptFile(path: string): Promise<string[]> {
  const content = await readFile(path, "utf8").catch((error: NodeJS.ErrnoException) => {
    throw new UsageError(`Cannot read the prompts file ${path} (${error.code ?? error.message}).`, { cause: error });
  });
  const texts: string[] = [];
  for (const [i, line] of content.split(/\r?\n/).entries()) {
    if (line.trim() === "") continue;
    let value: unknown;
    try {
      value = JSON.parse(line);
    } catch {
      throw new UsageError(`${path}:${i + 1} is not JSON. Write one prompt a line: "text" or {"text": "..."}.`);
    }
    const text = typeof value === "string" ? value : typeof value === "object" && value !== null ? ((value as { text?: unknown }).text ?? (value as { prompt?: unknown }).prompt) : undefined;
    if (typeof text !== "string" || text === "") throw new UsageError(`${path}:${i + 1} has no prompt: write "text" or {"text": "..."} (or {"prompt": "..."}).`);
    texts.push(text);
  }
  if (texts.length === 0) throw new UsageError(`${path} has no prompts: write one a line.`);
  return texts;
}

/** The prompts of a workload, made on demand: request i of a run always gets the same prompt. */
export class PromptMaker {
  readonly #tokenizer: TextTokenizer;
  readonly #source: PromptSource;
  readonly #output: LengthSpec;
  readonly #seed: number;

  constructor(tokenizer: TextTokenizer, source: PromptSource, output: LengthSpec, seed: number) {
    this.#tokenizer = tokenizer;
    this.#source = source;
    this.#output = output;
    this.#seed = seed;
  }

  prompt(index: number): BenchPrompt {
    // One generator per request index: the workload does not depend on the order requests finish in.
    const random = seededRandom(this.#seed * 1_000_003 + index);
    const outputLen = drawLength(this.#output, random);
    if (this.#source.kind === "file") {
      const text = this.#source.texts[index % this.#source.texts.length] as string;
      return { text, inputTokens: this.#tokenizer.count(text), outputLen };
    }
    const { text, inputTokens } = syntheticPrompt(this.#tokenizer, drawLength(this.#source.input, random), random);
    return { text, inputTokens, outputLen };
  }
}
