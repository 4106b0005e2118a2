import { join } from "node:path";
import type { Settings } from "../config/schema.ts";
import { readConversation, type ConversationRules } from "../model/conversation.ts";
import { StateStore } from "../pipeline/state.ts";
import { WorkdirPaths } from "../pipeline/workdir.ts";

/** The folder of the model this workdir built from: --model-dir, or the weights step's record. */
export async function modelFolder(settings: Settings): Promise<string | undefined> {
  if (settings.modelDir !== null) return settings.modelDir;
  try {
    const out = (await StateStore.load(new WorkdirPaths(settings.workdir))).get("weights")?.out as { mountDir?: string; modelPath?: string } | undefined;
    return out?.mountDir && out.modelPath ? join(out.mountDir, out.modelPath) : undefined;
  } catch {
    // No workdir, or one ask cannot read: the Llama 3 rules, as for a remote server.
    return undefined;
  }
}

/**
 * `ask`'s conversation rules: the model's own (tokenizer_config.json, generation_config.json,
 * config.json of the weights this workdir built), or, asking a server without a local build,
 * the Llama 3 format for an Instruct model name.
 */
export async function askConversation(settings: Settings): Promise<ConversationRules> {
  return readConversation(await modelFolder(settings), settings.model);
}
