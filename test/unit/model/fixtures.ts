import { readFileSync } from "node:fs";

/** The small files of a public model, from test/fixtures/models/<org>--<name>/. */
export function modelFile(model: string, name: "config.json" | "generation_config.json" | "tokenizer_config.json"): string {
  return readFileSync(new URL(`../../fixtures/models/${model.replace("/", "--")}/${name}`, import.meta.url), "utf8");
}

export function maybeModelFile(model: string, name: "generation_config.json" | "tokenizer_config.json"): string | undefined {
  try {
    return modelFile(model, name);
  } catch {
    return undefined;
  }
}

/** config.json of `model` with some fields changed: for rules no public model of the list trips. */
export function configWith(model: string, changes: Record<string, unknown>): string {
  return JSON.stringify({ ...(JSON.parse(modelFile(model, "config.json")) as object), ...changes });
}

export const llama3_8b = "meta-llama/Meta-Llama-3-8B";
export const llama3_8bInstruct = "meta-llama/Meta-Llama-3-8B-Instruct";
export const llama3_70bInstruct = "meta-llama/Meta-Llama-3-70B-Instruct";
export const llama31_8bInstruct = "meta-llama/Llama-3.1-8B-Instruct";
export const llama32_1bInstruct = "meta-llama/Llama-3.2-1B-Instruct";
export const llama2_7bChat = "meta-llama/Llama-2-7b-chat-hf";
export const mistral7bInstruct = "mistralai/Mistral-7B-Instruct-v0.1";
export const qwen2_7bInstruct = "Qwen/Qwen2-7B-Instruct";
