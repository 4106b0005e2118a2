import { mkdir, readFile } from "node:fs/promises";
import { join } from "node:path";
import type { SimpleGit } from "simple-git";
import { FailedError, InterruptedError } from "../common/errors.ts";
import { redact } from "../common/redact.ts";
import type { CloneOptions, GitClient } from "./git-client.ts";

/** GIT_* variables a user may rely on (a corporate CA, a proxy) and the one we set ourselves. */
const allowedGitVariables = ["GIT_TERMINAL_PROMPT", "GIT_SSL_CAINFO", "GIT_SSL_CAPATH", "GIT_PROXY_COMMAND", "GIT_SSH_COMMAND"];
const passedVariables = ["PATH", "HOME", "USER", "LANG", "LC_ALL", "XDG_CONFIG_HOME", "SSH_AUTH_SOCK", "HTTP_PROXY", "HTTPS_PROXY", "NO_PROXY", "http_proxy", "https_proxy", "no_proxy"];

/**
 * git's environment, built rather than inherited: simple-git refuses to pass variables that can
 * make git run programs (GIT_*, EDITOR, PAGER…) unless named, and a lone GIT_TERMINAL_PROMPT=0
 * means git never stops to ask for a password (a CI job would hang). Credentials come from the
 * user's git configuration (credential helper), never from a URL we print.
 */
function gitEnv(from: Readonly<Record<string, string | undefined>>): Record<string, string> {
  const env: Record<string, string> = { GIT_TERMINAL_PROMPT: "0" };
  for (const name of [...passedVariables, ...allowedGitVariables]) {
    const value = from[name];
    if (value !== undefined && !(name in env)) env[name] = value;
  }
  return env;
}

/** How long a git operation may go without finishing before it is given up. */
const gitBlockTimeoutMs = 10 * 60_000;

/** The one file that imports simple-git. */
export class SimpleGitClient implements GitClient {
  readonly #env: Readonly<Record<string, string | undefined>>;

  /** `env`: the CLI's environment, of which git gets only what it needs (see gitEnv). */
  constructor(env: Readonly<Record<string, string | undefined>> = {}) {
    this.#env = env;
  }

  async cloneAt(options: CloneOptions): Promise<{ commit: string }> {
    const { url, ref, dir, signal, onLine } = options;
    const git = await this.#git(undefined, signal, onLine);
    try {
      if (/^[0-9a-f]{40}$/.test(ref)) {
        // A commit cannot be cloned with --branch: fetch exactly that commit instead.
        await mkdir(dir, { recursive: true });
        const inDir = await this.#git(dir, signal, onLine);
        await inDir.init();
        await inDir.raw(["fetch", "--depth", "1", "--progress", "--", url, ref]);
        await inDir.raw(["checkout", "--detach", "FETCH_HEAD"]);
      } else {
        // `--` ends the options: nothing in the URL can be read as one (reliability case 20).
        await git.raw(["clone", "--depth", "1", "--branch", ref, "--single-branch", "--progress", "--", url, dir]);
      }
    } catch (error) {
      if (signal.aborted) throw new InterruptedError("interrupted during git clone", { cause: error });
      const detail = redact(String((error as Error).message ?? error)).trim().split("\n").slice(-3).join(" ");
      throw new FailedError(
        `Could not clone ${redact(url)} at ${ref}: ${detail}. Check the URL and ref (the *_repo_url and *_repo_ref settings) and your network.`,
        { cause: error },
      );
    }
    const commit = await this.headCommit(dir);
    if (!commit) throw new FailedError(`git clone of ${redact(url)} left no checkout in ${dir}`);
    // The checkout must be the ref itself: the tag (or branch) as the clone fetched it.
    if (!/^[0-9a-f]{40}$/.test(ref)) {
      const refCommit = await this.#resolve(dir, [`refs/tags/${ref}^{commit}`, `refs/remotes/origin/${ref}^{commit}`, `refs/heads/${ref}^{commit}`]);
      if (refCommit !== commit) {
        throw new FailedError(`The checkout of ${redact(url)} is at ${commit.slice(0, 12)}, not at ${ref} (${refCommit?.slice(0, 12) ?? "not found"})`);
      }
    } else if (commit !== ref) {
      throw new FailedError(`The checkout of ${redact(url)} is at ${commit}, not at ${ref}`);
    }
    return { commit };
  }

  async #resolve(dir: string, candidates: readonly string[]): Promise<string | undefined> {
    for (const candidate of candidates) {
      try {
        const sha = (await (await this.#git(dir)).revparse(["--verify", "--quiet", candidate])).trim();
        if (/^[0-9a-f]{40}$/.test(sha)) return sha;
      } catch {
        // Not this kind of ref: try the next.
      }
    }
    return undefined;
  }

  /**
   * Read from `.git` itself rather than by running git: every `plan`, `status` and no-op `build`
   * asks it of both clones, and a spawn (with simple-git loaded for it) costs more than the rest.
   * Our clones are detached at their tag or commit; a branch is looked up loose, then packed.
   */
  async headCommit(dir: string): Promise<string | undefined> {
    const gitDir = join(dir, ".git");
    const read = (path: string) => readFile(join(gitDir, path), "utf8").then((text) => text.trim(), () => undefined);
    const head = await read("HEAD");
    if (head === undefined) return undefined;
    if (/^[0-9a-f]{40}$/.test(head)) return head;
    const ref = /^ref: (refs\/[^\s]+)$/.exec(head)?.[1];
    if (!ref || ref.includes("..")) return undefined;
    const loose = await read(ref);
    if (loose !== undefined) return /^[0-9a-f]{40}$/.test(loose) ? loose : undefined;
    const packed = (await read("packed-refs"))?.split("\n").find((line) => line.endsWith(` ${ref}`));
    const sha = packed?.split(" ")[0];
    return sha && /^[0-9a-f]{40}$/.test(sha) ? sha : undefined;
  }

  /** simple-git, loaded when git must really run (a clone, a ref lookup). */
  async #git(baseDir: string | undefined, signal?: AbortSignal, onLine?: (line: string) => void): Promise<SimpleGit> {
    const { simpleGit } = await import("simple-git");
    const git = simpleGit({
      allowEnvironment: [...allowedGitVariables],
      ...(baseDir ? { baseDir } : {}),
      ...(signal ? { abort: signal } : {}),
      timeout: { block: gitBlockTimeoutMs },
      ...(onLine
        ? { progress: ({ stage, progress }: { stage: string; progress: number }) => onLine(`git ${stage}: ${progress}%`) }
        : {}),
    });
    return git.env(gitEnv(this.#env));
  }
}
