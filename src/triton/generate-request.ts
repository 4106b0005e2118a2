import { isInstructModel, llama3ChatPrompt, stopTokenId } from "./chat-template.ts";

/** What `ask` was asked, before it becomes a request. */
export interface AskRequest {
  readonly prompt: string;
  readonly model: string;
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
  readonly stream?: boolean;
}

export function usesChatTemplate(r: Pick<AskRequest, "raw" | "model">): boolean {
  return !r.raw && isInstructModel(r.model);
}

/** The text the model sees: the chat template around the prompt for Instruct models, unless --raw. */
export function promptText(r: Pick<AskRequest, "prompt" | "system" | "raw" | "model">): string {
  return usesChatTemplate(r) ? llama3ChatPrompt({ user: r.prompt, system: r.system }) : r.prompt;
}

export function generateBody(r: AskRequest): GenerateBody {
  // Instruct models end their turn with <|eot_id|> also when the prompt is sent raw.
  const chatModel = isInstructModel(r.model);
  return {
    text_input: promptText(r),
    max_tokens: r.maxTokens,
    end_id: stopTokenId(chatModel),
    ...(r.temperature === undefined ? {} : { temperature: r.temperature }),
    ...(r.topP === undefined ? {} : { top_p: r.topP }),
    ...(r.topK === undefined ? {} : { top_k: r.topK }),
    ...(r.stream ? { stream: true } : {}),
  };
}
