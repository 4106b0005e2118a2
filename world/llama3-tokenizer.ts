/**
 * The real Llama 3 tokenizer as a tokenizers-library `tokenizer.json`, made from the vocabulary
 * and merges that the npm package llama3-tokenizer-js ships (its data is Meta's tokenizer.json,
 * re-encoded; see its src/data-conversion.py): the 128,000 byte-level BPE tokens in id order and
 * the 280,147 merges in priority order, with Llama 3's pre-tokenizer, post-processor, decoder and
 * 256 special tokens from llama3-files.ts. Tests use it where token counts must be Llama 3's own
 * (`bench`), and check it against llama3-tokenizer-js's own encoder.
 */
import llama3Tokenizer from "llama3-tokenizer-js";
import { tokenizerJson } from "./server/llama3-files.ts";

interface Llama3TokenizerData {
  /** Token strings by id: the 128,000 BPE tokens, then the special tokens. */
  readonly vocabById: readonly string[];
  /** "left right" → priority, in priority order. */
  readonly merges: ReadonlyMap<string, number>;
}

const bpeVocabSize = 128_000;

export function realLlama3TokenizerJson(): string {
  const data = llama3Tokenizer as unknown as Llama3TokenizerData;
  const tokenizer = JSON.parse(tokenizerJson()) as { model: { vocab: Record<string, number>; merges: string[] } };
  const vocab: Record<string, number> = {};
  data.vocabById.slice(0, bpeVocabSize).forEach((token, id) => (vocab[token] = id));
  tokenizer.model.vocab = vocab;
  tokenizer.model.merges = [...data.merges.keys()];
  return JSON.stringify(tokenizer);
}
