import { FailedError, InterruptedError } from "../common/errors.ts";
import { redactUrl } from "../common/redact.ts";
import type { HubEnv } from "./hub-env.ts";
import { hubError } from "./hub-errors.ts";
import { type HttpAnswer, httpGet } from "./http.ts";

export interface RepoFile {
  readonly path: string;
  readonly size: number;
  /** sha256 of the content for LFS files, the git blob sha1 otherwise: the blob's name in the cache. */
  readonly oid: string;
  readonly lfs: boolean;
}

/** How many times a transient failure (5xx, 429, reset) is tried before giving up (huggingface_hub: 5). */
const maxAttempts = 5;

/**
 * The wait before retry number `retry` (1, 2, …): 1, 2, 4, 8, 8 … s, huggingface_hub's backoff
 * (base 1 s, doubling, capped at 8 s). Used by the Hub requests and by the downloads.
 */
export function retryDelayMs(retry: number): number {
  return Math.min(1000 * 2 ** (retry - 1), 8_000);
}

/** Waits `ms`, or fails with InterruptedError as soon as `signal` aborts. */
export type Sleep = (ms: number, signal: AbortSignal) => Promise<void>;

/** The real wait. Tests pass their own Sleep, which records the delay and returns at once. */
export const sleep: Sleep = (ms, signal) =>
  new Promise((resolve, reject) => {
    if (signal.aborted) return reject(new InterruptedError("interrupted"));
    const onAbort = () => {
      clearTimeout(timer);
      reject(new InterruptedError("interrupted"));
    };
    // Removed when the time is up: retries would otherwise pile listeners onto one signal.
    const timer = setTimeout(() => {
      signal.removeEventListener("abort", onAbort);
      resolve();
    }, ms);
    signal.addEventListener("abort", onAbort, { once: true });
  });

/**
 * The Hub as steps and doctor use it: a role in `Clients`, built once per command by the Session,
 * so that nothing builds a client (or reads the token) of its own.
 */
export interface Hub {
  /** The Hugging Face environment it was made from: endpoint, token source, cache, offline. */
  readonly hub: HubEnv;
  resolveCommit(repo: string, revision: string): Promise<string>;
  listFiles(repo: string, commit: string): Promise<RepoFile[]>;
  checkAccess(repo: string): Promise<void>;
  whoami(): Promise<{ name: string }>;
  request(url: string, what: { repo: string; revision?: string; path?: string }, headers?: Record<string, string>): Promise<HttpAnswer>;
  /** The same client, telling its retries to `warn` (a step's log). */
  withWarnings(warn: (message: string) => void): Hub;
}

/** One entry of `GET /api/models/{repo}/tree/{rev}`. */
interface TreeEntry {
  readonly type: "file" | "directory";
  readonly path: string;
  readonly size?: number;
  readonly oid?: string;
  readonly lfs?: { readonly oid: string; readonly size: number };
}

/**
 * The Hub API calls the tool makes. Every request goes through `request`, which adds the token
 * only for the Hub's own origin, retries transient failures, and turns 401/403/404 into their
 * distinct messages.
 */
export class HubClient implements Hub {
  readonly hub: HubEnv;
  readonly #signal: AbortSignal;
  readonly #warn: (message: string) => void;
  readonly #sleep: Sleep;

  constructor(hub: HubEnv, signal: AbortSignal, warn: (message: string) => void = () => {}, wait: Sleep = sleep) {
    this.hub = hub;
    this.#signal = signal;
    this.#warn = warn;
    this.#sleep = wait;
  }

  /** The 40-hex commit a revision names now. */
  async resolveCommit(repo: string, revision: string): Promise<string> {
    const url = `${this.hub.endpoint}/api/models/${repo}/revision/${encodeURIComponent(revision)}`;
    const response = await this.request(url, { repo, revision });
    const info = await response.json<{ sha?: string }>();
    if (!info.sha || !/^[0-9a-f]{40}$/.test(info.sha)) {
      throw new FailedError(`The Hub gave an invalid commit for ${repo}@${revision}: ${JSON.stringify(info.sha)}`);
    }
    return info.sha;
  }

  /**
   * Every file of the repo at `commit`: the tree API, recursively, following its `Link: rel="next"`
   * pages (written here: @huggingface/hub's listFiles did the same, and loading it cost more
   * than every other module of a no-op `build`).
   */
  async listFiles(repo: string, commit: string): Promise<RepoFile[]> {
    const files: RepoFile[] = [];
    const origin = new URL(this.hub.endpoint).origin;
    let url: string | undefined = `${this.hub.endpoint}/api/models/${repo}/tree/${encodeURIComponent(commit)}?recursive=true&expand=false`;
    for (let page = 0; url !== undefined; page++) {
      if (page >= 1000) throw new FailedError(`The Hub's listing of ${repo} does not end (over 1000 pages)`);
      const answer = await this.request(url, { repo, revision: commit });
      const next = nextPage(answer.header("link"));
      for (const entry of await answer.json<TreeEntry[]>()) {
        if (entry.type !== "file") continue;
        const oid = entry.lfs?.oid ?? entry.oid;
        if (!oid) throw new FailedError(`The Hub listed ${entry.path} in ${repo} without an oid`);
        files.push({ path: entry.path, size: entry.lfs?.size ?? entry.size ?? 0, oid, lfs: entry.lfs !== undefined });
      }
      // Pages stay on the Hub: a next page elsewhere would get no token, and is not the Hub's.
      url = next !== undefined && new URL(next, url).origin === origin ? new URL(next, url).toString() : undefined;
    }
    return files;
  }

  withWarnings(warn: (message: string) => void): Hub {
    return new HubClient(this.hub, this.#signal, warn, this.#sleep);
  }

  /**
   * Whether this token may download the repo: `auth-check`, which a gated repo answers 401/403
   * without access, unlike model info, which it serves to anyone (reliability J7).
   */
  async checkAccess(repo: string): Promise<void> {
    const response = await this.request(`${this.hub.endpoint}/api/models/${repo}/auth-check`, { repo });
    response.discard();
  }

  /** `GET /api/whoami-v2`: the user a token belongs to. */
  async whoami(): Promise<{ name: string }> {
    const response = await this.request(`${this.hub.endpoint}/api/whoami-v2`, { repo: "whoami" });
    return response.json<{ name: string }>();
  }

  /**
   * One HTTP request with the tool's rules. `Authorization` goes only to the Hub's origin; a
   * redirect elsewhere (the LFS CDN) is followed without it, since signed URLs need none (H11).
   */
  async request(
    url: string,
    what: { repo: string; revision?: string; path?: string },
    headers: Record<string, string> = {},
  ): Promise<HttpAnswer> {
    if (this.hub.offline) {
      throw new FailedError(`HF_HUB_OFFLINE is set: not contacting ${redactUrl(url)}. Unset it, or make sure the model is in the cache.`);
    }
    const hubOrigin = new URL(this.hub.endpoint).origin;
    const current = url;
    for (let attempt = 1; ; attempt++) {
      let response: HttpAnswer;
      try {
        response = await this.#follow(current, hubOrigin, headers);
      } catch (error) {
        if (this.#signal.aborted) throw new InterruptedError("interrupted", { cause: error });
        if (attempt >= maxAttempts) {
          throw new FailedError(`Could not reach ${redactUrl(current)} after ${maxAttempts} tries: ${causeOf(error)}. Check your network, or HF_ENDPOINT.`, {
            cause: error,
          });
        }
        this.#warn(`could not reach ${redactUrl(current)} (${causeOf(error)}); retrying (try ${attempt + 1} of ${maxAttempts})`);
        await this.#sleep(retryDelayMs(attempt), this.#signal);
        continue;
      }
      if (response.ok) return response;
      if ((response.status === 429 || response.status >= 500) && attempt < maxAttempts) {
        response.discard();
        const waitMs = retryAfterMs(response) ?? retryDelayMs(attempt);
        const id = response.header("x-request-id");
        this.#warn(
          `the Hub answered ${response.status} for ${redactUrl(current)}${id ? ` (request id ${id})` : ""}; retrying in ${(waitMs / 1000).toFixed(0)} s (try ${attempt + 1} of ${maxAttempts})`,
        );
        await this.#sleep(waitMs, this.#signal);
        continue;
      }
      const body = await response.text().catch(() => "");
      let message = body;
      try {
        message = (JSON.parse(body) as { error?: string }).error ?? body;
      } catch {
        // Not JSON: keep the text.
      }
      // Access refused to a valid token: say whose, so the user knows which account to approve (case 11).
      const refused = this.hub.token && (response.status === 403 || (response.status === 401 && response.header("x-error-code") === "GatedRepo"));
      const user = refused && what.repo !== "whoami" ? (await this.whoami().catch(() => undefined))?.name : undefined;
      throw hubError(
        {
          status: response.status,
          errorCode: response.header("x-error-code"),
          message: message.slice(0, 300),
          requestId: response.header("x-request-id"),
        },
        what,
        this.hub,
        user,
      );
    }
  }

  async #follow(url: string, hubOrigin: string, headers: Record<string, string>): Promise<HttpAnswer> {
    let current = url;
    for (let hop = 0; hop < 5; hop++) {
      const sameOrigin = new URL(current).origin === hubOrigin;
      const sent: Record<string, string> = { "user-agent": "llama3-trt", ...headers };
      if (sameOrigin && this.hub.token) sent.authorization = `Bearer ${this.hub.token}`;
      const response = await httpGet(current, { headers: sent, signal: this.#signal });
      const location = response.header("location");
      if (response.status >= 300 && response.status < 400 && location) {
        response.discard();
        current = new URL(location, current).toString();
        continue;
      }
      return response;
    }
    throw new FailedError(`Too many redirects from ${redactUrl(url)}`);
  }
}

/** `Retry-After` in seconds, at most a minute; none (or an HTTP date) gives undefined. */
function retryAfterMs(response: HttpAnswer): number | undefined {
  const seconds = Number(response.header("retry-after") ?? Number.NaN);
  return Number.isFinite(seconds) ? Math.min(seconds * 1000, 60_000) : undefined;
}

/** The system error code node:http fails with (ECONNREFUSED, ECONNRESET, ENOTFOUND …), else the message. */
function causeOf(error: unknown): string {
  return (error as NodeJS.ErrnoException).code ?? (error instanceof Error ? error.message : String(error));
}

/** The `rel="next"` URL of a Link header, if any. */
function nextPage(link: string | undefined): string | undefined {
  for (const part of (link ?? "").split(",")) {
    const match = /<([^>]+)>\s*;\s*rel="?next"?/.exec(part.trim());
    if (match) return match[1];
  }
  return undefined;
}
