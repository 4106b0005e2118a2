/**
 * The model's own conversation rules: its chat template (tokenizer_config.json's
 * `chat_template`, a Jinja template, rendered with @huggingface/jinja, the implementation
 * Hugging Face's own JavaScript libraries use) and its end tokens (generation_config.json's
 * `eos_token_id`, a number or a list). The Llama 3 format is the fallback for an Instruct model
 * whose files say nothing.
 */
import { readFile } from "node:fs/promises";
import { createRequire } from "node:module";
import { join } from "node:path";
import type { Template } from "@huggingface/jinja";
import { isInstructModel, llama3Conversation, llama3Tokens } from "../triton/chat-template.ts";

/** Loaded when a template is compiled, not by every command that imports the model's rules. */
const jinja = () => createRequire(import.meta.url)("@huggingface/jinja") as typeof import("@huggingface/jinja");

export interface ChatMessage {
  readonly role: "system" | "user" | "assistant";
  readonly content: string;
}

export interface ConversationRules {
  /** Where the template comes from: the model's tokenizer_config.json, the built-in Llama 3 format, or none (a base model). */
  readonly template: "tokenizer_config.json" | "llama3-fallback" | "none";
  /** Every id that ends generation, as the model lists them. */
  readonly endTokenIds: readonly number[];
  /**
   * The one end_id v0.8.0's backend takes per request (its `end_id` input is a scalar): for a
   * chat model the end token its template closes a turn with, else the model's first end token.
   */
  readonly endId: number;
  /** The eos token the tokenizer names: the backend's default end_id when a request sends none. */
  readonly tokenizerEos: { readonly text: string; readonly id: number | undefined } | undefined;
  /** The prompt for these messages, ending where the assistant's answer begins. */
  render(messages: readonly ChatMessage[]): string;
}

export interface ConversationFiles {
  /** tokenizer_config.json, generation_config.json and config.json as text, when the model has them. */
  readonly tokenizerConfig?: string | undefined;
  readonly generationConfig?: string | undefined;
  readonly config?: string | undefined;
}

export class ConversationError extends Error {}

function parseObject(text: string | undefined, name: string): Record<string, unknown> | undefined {
  if (text === undefined) return undefined;
  try {
    const value = JSON.parse(text) as unknown;
    if (typeof value === "object" && value !== null && !Array.isArray(value)) return value as Record<string, unknown>;
  } catch {
    // Reported below.
  }
  throw new ConversationError(`${name} is not a JSON object`);
}

const idList = (value: unknown): number[] =>
  typeof value === "number" ? [value] : Array.isArray(value) ? value.filter((v): v is number => typeof v === "number") : [];

/** A token's text: a string, or `{ content }` as tokenizer_config.json writes added tokens. */
function tokenText(value: unknown): string | undefined {
  if (typeof value === "string") return value;
  if (typeof value === "object" && value !== null && typeof (value as { content?: unknown }).content === "string") return (value as { content: string }).content;
  return undefined;
}

export function conversationRules(files: ConversationFiles, model: string): ConversationRules {
  const tokenizer = parseObject(files.tokenizerConfig, "tokenizer_config.json");
  const generation = parseObject(files.generationConfig, "generation_config.json");
  const config = parseObject(files.config, "config.json");

  // id -> text of the special tokens, from added_tokens_decoder.
  const texts = new Map<number, string>();
  const decoder = (tokenizer?.added_tokens_decoder ?? {}) as Record<string, unknown>;
  for (const [id, entry] of Object.entries(decoder)) {
    const text = tokenText(entry);
    if (text !== undefined && /^\d+$/.test(id)) texts.set(Number(id), text);
  }
  const idOf = (text: string) => [...texts].find(([, t]) => t === text)?.[0];

  const eosText = tokenText(tokenizer?.eos_token);
  const tokenizerEos = eosText === undefined ? undefined : { text: eosText, id: idOf(eosText) };
  const fromModel = idList(generation?.eos_token_id);
  const endTokenIds = fromModel.length > 0 ? fromModel : idList(config?.eos_token_id).length > 0 ? idList(config?.eos_token_id) : tokenizerEos?.id !== undefined ? [tokenizerEos.id] : [];

  const own = typeof tokenizer?.chat_template === "string" ? tokenizer.chat_template : undefined;
  const template: ConversationRules["template"] = own !== undefined ? "tokenizer_config.json" : isInstructModel(model) ? "llama3-fallback" : "none";
  const bosToken = tokenText(tokenizer?.bos_token) ?? "";

  let render: ConversationRules["render"];
  let turnEnd: string | undefined;
  if (own !== undefined) {
    let compiled: Template;
    try {
      compiled = new (jinja().Template)(own);
    } catch (error) {
      throw new ConversationError(`the chat_template of tokenizer_config.json does not parse: ${(error as Error).message}`);
    }
    render = (messages) => {
      try {
        return compiled.render({
          messages: messages.map((m) => ({ role: m.role, content: m.content })),
          bos_token: bosToken,
          eos_token: eosText ?? "",
          add_generation_prompt: true,
        });
      } catch (error) {
        // Templates raise their own errors ("Conversation roles must alternate …").
        throw new ConversationError(`the model's chat template refused the conversation: ${(error as Error).message}`);
      }
    };
    turnEnd = turnEndOf(render, endTokenIds.map((id) => texts.get(id)).filter((t): t is string => t !== undefined));
  } else if (template === "llama3-fallback") {
    // Every turn in order, as the template of Meta's own tokenizer_config.json writes them.
    render = (messages) => llama3Conversation(messages);
    turnEnd = llama3Tokens.endOfTurn.text;
  } else {
    render = (messages) => messages.map((m) => m.content).join("\n");
  }

  const turnEndId = turnEnd === undefined ? undefined : (idOf(turnEnd) ?? (turnEnd === llama3Tokens.endOfTurn.text ? llama3Tokens.endOfTurn.id : undefined));
  const fallbackEnd = template === "none" ? llama3Tokens.endOfText.id : llama3Tokens.endOfTurn.id;
  const endId = (template !== "none" ? turnEndId : undefined) ?? endTokenIds[0] ?? tokenizerEos?.id ?? fallbackEnd;
  return { template, endTokenIds: endTokenIds.length > 0 ? endTokenIds : [endId], endId, tokenizerEos, render };
}

/**
 * The end token a template writes right after an answer: rendered on a short conversation, the
 * end token text nearest after the assistant's words (Llama 3 <|eot_id|>, Llama 2 and Mistral
 * </s>). Looking for any end token in the template would take Llama 3.1's <|eom_id|>, which ends
 * a tool call, not a turn.
 */
function turnEndOf(render: ConversationRules["render"], candidates: readonly string[]): string | undefined {
  const answer = "llama3trtprobeanswer";
  let text: string;
  try {
    text = render([
      { role: "user", content: "hello" },
      { role: "assistant", content: answer },
      { role: "user", content: "hello" },
    ]);
  } catch {
    return undefined;
  }
  const after = text.slice(text.indexOf(answer) + answer.length);
  let best: { text: string; at: number } | undefined;
  for (const candidate of candidates) {
    const at = after.indexOf(candidate);
    if (at >= 0 && (best === undefined || at < best.at)) best = { text: candidate, at };
  }
  return best?.text;
}

/** The rules from a model folder's files (those it has); the fallbacks for a folder that is not there. */
export async function readConversation(dir: string | undefined, model: string): Promise<ConversationRules> {
  const read = (name: string) => (dir === undefined ? Promise.resolve(undefined) : readFile(join(dir, name), "utf8").catch(() => undefined));
  const [tokenizerConfig, generationConfig, config] = await Promise.all([read("tokenizer_config.json"), read("generation_config.json"), read("config.json")]);
  return conversationRules({ tokenizerConfig, generationConfig, config }, model);
}
