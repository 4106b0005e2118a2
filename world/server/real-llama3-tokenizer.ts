/**
 * The real Llama 3 tokenizer as a tokenizers-library `tokenizer.json`: the vocabulary and the
 * merges that the npm package llama3-tokenizer-js ships (taken from Meta's tokenizer.json; the
 * package stores them compressed), in the layout of the world's tokenizer.json (Llama 3's
 * pre-tokenizer, post-processor, decoder and its 256 special tokens 128000–128255). Tests that
 * count tokens the way the real model does use it; the Hub keeps serving its tiny byte-level
 * tokenizer, so downloads stay small.
 */
import llama3Tokenizer from "llama3-tokenizer-js";
import { tokenizerJson } from "./llama3-files.ts";

/** Ids below this are byte-level BPE tokens; the special tokens start here. */
const firstSpecialId = 128000;

export function realLlama3TokenizerJson(): string {
  const tokenizer = JSON.parse(tokenizerJson()) as { model: { vocab: Record<string, number>; merges: string[] } };
  const vocab: Record<string, number> = {};
  for (let id = 0; id < firstSpecialId; id++) {
    const token = llama3Tokenizer.vocabById[id];
    if (token === undefined) throw new Error(`llama3-tokenizer-js has no token ${id}`);
    vocab[token] = id;
  }
  tokenizer.model.vocab = vocab;
  // The package's Map keeps the merges in priority order, as tokenizer.json lists them.
  tokenizer.model.merges = [...llama3Tokenizer.merges.keys()];
  return JSON.stringify(tokenizer);
}
