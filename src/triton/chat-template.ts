/**
 * Llama 3's chat format and special tokens (the model card and tokenizer_config.json's
 * chat_template; ids from the tokenizer). The Instruct models end a turn with <|eot_id|>; a
 * server that stops only at <|end_of_text|> runs on past the answer into an invented next turn.
 */
export const llama3Tokens = {
  beginOfText: { text: "<|begin_of_text|>", id: 128000 },
  endOfText: { text: "<|end_of_text|>", id: 128001 },
  startHeader: { text: "<|start_header_id|>", id: 128006 },
  endHeader: { text: "<|end_header_id|>", id: 128007 },
  endOfTurn: { text: "<|eot_id|>", id: 128009 },
} as const;

/** Meta's Instruct (chat) models; the base models continue text and have no turns. */
export function isInstructModel(model: string): boolean {
  return /instruct|chat/i.test(model.split("/").pop() ?? model);
}

function turn(role: string, content: string): string {
  const t = llama3Tokens;
  // The chat template trims each message, as tokenizer_config.json's template does.
  return `${t.startHeader.text}${role}${t.endHeader.text}\n\n${content.trim()}${t.endOfTurn.text}`;
}

/**
 * `<|begin_of_text|>` [system turn] user turn, then the assistant's header, so the model's next
 * tokens are its answer. The preprocessing model of v0.8.0 adds no special tokens
 * (add_special_tokens False), so the begin-of-text token is written here.
 */
export function llama3ChatPrompt(p: { readonly user: string; readonly system?: string | undefined }): string {
  const system = p.system !== undefined && p.system.trim() !== "" ? [{ role: "system", content: p.system }] : [];
  return llama3Conversation([...system, { role: "user", content: p.user }]);
}

/** A whole conversation (system, user and assistant turns in order) in the Llama 3 format, ending at the assistant's header. */
export function llama3Conversation(messages: readonly { readonly role: string; readonly content: string }[]): string {
  const t = llama3Tokens;
  return `${t.beginOfText.text}${messages.map((m) => turn(m.role, m.content)).join("")}${t.startHeader.text}assistant${t.endHeader.text}\n\n`;
}

/** The token generation stops at: end of turn for chat, end of text for plain continuation. */
export function stopTokenId(chat: boolean): number {
  return chat ? llama3Tokens.endOfTurn.id : llama3Tokens.endOfText.id;
}

/** Special tokens a decoder left in (run.py decodes without skipping them): cut at the end of turn, drop the rest. */
export function cleanAnswer(text: string): string {
  const end = text.indexOf(llama3Tokens.endOfTurn.text);
  const answer = end >= 0 ? text.slice(0, end) : text;
  return answer.replace(/<\|[a-z_]+\|>|<\|reserved_special_token_\d+\|>/g, "");
}
