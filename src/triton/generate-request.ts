import type { ChatMessage, ConversationRules } from "../model/conversation.ts";

/** What `ask` was asked, before it becomes a request. */
export interface AskRequest {
  readonly prompt: string;
  /** The model's own conversation rules: its chat template and end tokens (model/conversation.ts). */
  readonly rules: ConversationRules;
  readonly system?: string | undefined;
  /** Send the prompt as is: no chat template. */
  readonly raw: boolean;
  readonly maxTokens: number;
  readonly temperature?: number | undefined;
  readonly topP?: number | undefined;
  readonly topK?: number | undefined;
  readonly stream: boolean;
}

/**
 * The JSON body of `POST /v2/models/ensemble/generate(_stream)`. Every field is an input of the
 * v0.8.0 ensemble at the top level of the body, where the generate extension reads inputs (a
 * `parameters` object would carry request parameters, not inputs: the seed's curl put max_tokens
 * there). end_id is sent explicitly: the server's default is the tokenizer's eos token, which in
 * older Llama 3 tokenizer configs is <|end_of_text|>, not the end of a turn.
 */
export interface GenerateBody {
  readonly text_input: string;
  readonly max_tokens: number;
  readonly end_id: number;
  readonly temperature?: number;
  readonly top_p?: number;
  readonly top_k?: number;
  /** The end token is masked until this many tokens came (how `bench` asks for an exact length). */
  readonly min_length?: number;
  readonly stream?: boolean;
}

export function usesChatTemplate(r: Pick<AskRequest, "raw" | "rules">): boolean {
  return !r.raw && r.rules.template !== "none";
}

/** The text the model sees: its chat template around the prompt for chat models, unless --raw. */
export function promptText(r: Pick<AskRequest, "prompt" | "system" | "raw" | "rules">): string {
  if (!usesChatTemplate(r)) return r.prompt;
  const messages: ChatMessage[] = [
    ...(r.system !== undefined && r.system.trim() !== "" ? [{ role: "system" as const, content: r.system }] : []),
    { role: "user", content: r.prompt },
  ];
  return r.rules.render(messages);
}

export function generateBody(r: AskRequest): GenerateBody {
  return {
    text_input: promptText(r),
    max_tokens: r.maxTokens,
    // A chat model ends its turn with its own end token also when the prompt is sent raw.
    end_id: r.rules.endId,
    ...(r.temperature === undefined ? {} : { temperature: r.temperature }),
    ...(r.topP === undefined ? {} : { top_p: r.topP }),
    ...(r.topK === undefined ? {} : { top_k: r.topK }),
    ...(r.stream ? { stream: true } : {}),
  };
}
