/**
 * The model's own tokenizer: its `tokenizer.json` (and `tokenizer_config.json`) loaded with
 * @huggingface/tokenizers, the pure-JS implementation of the Hugging Face tokenizers library that
 * transformers.js uses. Loaded once per process by whoever needs token counts (`bench` makes
 * prompts of a given length and counts answers; the OpenAI gateway counts usage).
 */
import { readFile } from "node:fs/promises";
import { join } from "node:path";
import { Tokenizer } from "@huggingface/tokenizers";

/** What callers need from a tokenizer; small on purpose, so a test can hand in its own. */
export interface TextTokenizer {
  /** The folder the tokenizer was read from. */
  readonly dir: string;
  /** Token ids of a text, without the special tokens a template would add (no <|begin_of_text|>). */
  encode(text: string): number[];
  /** The text of token ids; special tokens are dropped unless `keepSpecial`. */
  decode(ids: readonly number[], options?: { keepSpecial?: boolean }): string;
  /** How many tokens a text is (encode(text).length). */
  count(text: string): number;
}

export class TokenizerError extends Error {}

/** Reads `<dir>/tokenizer.json` and `<dir>/tokenizer_config.json` (optional) and builds the tokenizer. */
export async function loadTokenizer(dir: string): Promise<TextTokenizer> {
  const tokenizerPath = join(dir, "tokenizer.json");
  const text = await readFile(tokenizerPath, "utf8").catch((error: NodeJS.ErrnoException) => {
    throw new TokenizerError(
      error.code === "ENOENT" ? `${tokenizerPath} does not exist: the model folder has no tokenizer.json.` : `Cannot read ${tokenizerPath}: ${error.message}`,
      { cause: error },
    );
  });
  const configText = await readFile(join(dir, "tokenizer_config.json"), "utf8").catch(() => "{}");
  return tokenizerFromJson(dir, text, configText);
}

export function tokenizerFromJson(dir: string, tokenizerJson: string, tokenizerConfigJson = "{}"): TextTokenizer {
  let tokenizer: Tokenizer;
  try {
    tokenizer = new Tokenizer(JSON.parse(tokenizerJson) as object, JSON.parse(tokenizerConfigJson) as object);
  } catch (error) {
    throw new TokenizerError(`The tokenizer in ${dir} does not load: ${(error as Error).message}`, { cause: error });
  }
  const encode = (text: string) => tokenizer.encode(text, { add_special_tokens: false }).ids;
  return {
    dir,
    encode,
    decode: (ids, options = {}) => tokenizer.decode([...ids], { skip_special_tokens: options.keepSpecial !== true }),
    count: (text) => (text === "" ? 0 : encode(text).length),
  };
}
