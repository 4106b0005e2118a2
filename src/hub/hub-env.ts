import { readFileSync } from "node:fs";
import { homedir } from "node:os";
import { join } from "node:path";
import { UsageError } from "../common/errors.ts";
import { redactor } from "../common/redact.ts";

/** How the Hugging Face tools are configured, read once, in one place (huggingface_hub's rules). */
export interface HubEnv {
  readonly endpoint: string;
  readonly token: string | undefined;
  /** Where the token came from, for messages: never the token itself. */
  readonly tokenSource: string | undefined;
  /** Where we looked, for the "no token" message. */
  readonly tokenLookup: readonly string[];
  readonly cacheDir: string;
  readonly offline: boolean;
}

const truthy = (value: string | undefined) => value !== undefined && ["1", "true", "yes", "on"].includes(value.toLowerCase());

export function readHubEnv(env: Readonly<Record<string, string | undefined>>): HubEnv {
  const home = env.HOME ?? homedir();
  const hfHome = env.HF_HOME ?? join(env.XDG_CACHE_HOME ?? join(home, ".cache"), "huggingface");
  const cacheDir = env.HF_HUB_CACHE ?? env.HUGGINGFACE_HUB_CACHE ?? join(hfHome, "hub");
  const tokenPath = env.HF_TOKEN_PATH ?? join(hfHome, "token");
  const endpoint = (env.HF_ENDPOINT ?? "https://huggingface.co").replace(/\/+$/, "");

  let token: string | undefined;
  let tokenSource: string | undefined;
  for (const name of ["HF_TOKEN", "HUGGING_FACE_HUB_TOKEN"]) {
    const value = env[name]?.trim();
    if (value) {
      token = value;
      tokenSource = name;
      break;
    }
  }
  if (!token) {
    try {
      const value = readFileSync(tokenPath, "utf8").trim();
      if (value) {
        token = value;
        tokenSource = tokenPath;
      }
    } catch {
      // No token file: fine for public repos; gated ones say what to do.
    }
  }
  if (token) {
    redactor.add(token);
    // The Hub's tokens all start with hf_; anything else is a paste error, not a secret to send (case 12a).
    if (!token.startsWith("hf_")) {
      throw new UsageError(
        `The Hugging Face token from ${tokenSource} is not a token (they start with hf_). Copy it again from https://huggingface.co/settings/tokens.`,
      );
    }
  }
  return {
    endpoint,
    token,
    tokenSource,
    tokenLookup: ["HF_TOKEN", "HUGGING_FACE_HUB_TOKEN", tokenPath],
    cacheDir,
    offline: truthy(env.HF_HUB_OFFLINE) || truthy(env.TRANSFORMERS_OFFLINE),
  };
}
