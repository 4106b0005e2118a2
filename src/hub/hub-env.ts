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
  const endpoint = checkedEndpoint(env.HF_ENDPOINT);

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
    } catch (error) {
      // No token file: fine for public repos; gated ones say what to do. One that is there but
      // cannot be read is a setup to fix, not a missing token.
      const code = (error as NodeJS.ErrnoException).code;
      if (code !== "ENOENT") {
        throw new UsageError(
          `The Hugging Face token file ${tokenPath} cannot be read (${code ?? String(error)}). Fix its permissions, or point HF_TOKEN_PATH elsewhere, or set HF_TOKEN.`,
        );
      }
    }
  }
  if (token) {
    redactor.add(token);
    if (/\s/.test(token)) {
      throw new UsageError(`The Hugging Face token from ${tokenSource} has spaces or line breaks in it: a token is one word starting with hf_. Copy it again from https://huggingface.co/settings/tokens.`);
    }
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

/**
 * HF_ENDPOINT, as huggingface_hub reads it (trailing slashes dropped); anything that is not an
 * http(s) URL is a configuration error that says so, not a request retried five times.
 */
export function checkedEndpoint(raw: string | undefined): string {
  // Set but empty is unset, as for DOCKER_HOST.
  const value = (raw === undefined || raw.trim() === "" ? "https://huggingface.co" : raw.trim()).replace(/\/+$/, "");
  const url = URL.canParse(value) ? new URL(value) : undefined;
  if (!url || !["http:", "https:"].includes(url.protocol) || url.username || url.password || url.search || url.hash) {
    throw new UsageError(`HF_ENDPOINT must be an http:// or https:// URL without credentials or query, such as https://huggingface.co; got ${JSON.stringify(raw)}.`);
  }
  return value;
}
