/** What the tool needs of git: a few verbs, each taking its folder explicitly. */
export interface GitClient {
  /** A shallow checkout of `ref` (tag, branch or commit) into `dir`, which must not exist yet. */
  cloneAt(options: CloneOptions): Promise<{ commit: string }>;
  /** The checked-out commit, or undefined when `dir` is not a git checkout. */
  headCommit(dir: string): Promise<string | undefined>;
}

export interface CloneOptions {
  readonly url: string;
  readonly ref: string;
  readonly dir: string;
  readonly signal: AbortSignal;
  readonly onLine: (line: string) => void;
}
