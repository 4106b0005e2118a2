import { readFile } from "node:fs/promises";
import { join } from "node:path";
import { Tokenizer } from "@huggingface/tokenizers";

/**
 * Token counts with the model's own tokenizer (its tokenizer.json, through Hugging Face's
 * JavaScript implementation of the tokenizers library), for `usage` and for the max_input_len
 * check. The prompt is counted as the v0.8.0 preprocessing model encodes it: with
 * add_special_tokens False (its config.pbtxt), the special tokens written by the chat template
 * (<|begin_of_text|>, <|eot_id|> …) counted as the single tokens they are.
 */
export class TokenCounter {
  readonly #tokenizer: Tokenizer;

  private constructor(tokenizer: Tokenizer) {
    this.#tokenizer = tokenizer;
  }

  /** The tokenizer of a model folder; fails with what is missing or broken. */
  static async load(dir: string): Promise<TokenCounter> {
    const read = async (name: string) => {
      const path = join(dir, name);
      let text: string;
      try {
        text = await readFile(path, "utf8");
      } catch (error) {
        throw new TokenizerFilesError(`${path} cannot be read (${(error as NodeJS.ErrnoException).code ?? "error"}): the gateway counts tokens with the model's own tokenizer.`);
      }
      try {
        return JSON.parse(text) as object;
      } catch (error) {
        throw new TokenizerFilesError(`${path} is not JSON: ${(error as Error).message}`);
      }
    };
    // One after the other: a folder missing both is told about tokenizer.json, every time.
    const json = await read("tokenizer.json");
    const config = await read("tokenizer_config.json");
    try {
      return new TokenCounter(new Tokenizer(json, config));
    } catch (error) {
      throw new TokenizerFilesError(`The tokenizer in ${dir} cannot be loaded: ${(error as Error).message}`);
    }
  }

  count(text: string): number {
    return this.#tokenizer.encode(text, { add_special_tokens: false }).ids.length;
  }

  ids(text: string): number[] {
    return this.#tokenizer.encode(text, { add_special_tokens: false }).ids;
  }
}

export class TokenizerFilesError extends Error {}
