import type { SettingKey } from "../config/schema.ts";

/** The global options, as commander parsed them (before settings resolution). */
export interface GlobalOptions {
  readonly workdir?: string;
  readonly config?: string;
  readonly json?: boolean;
  readonly verbose?: boolean;
  readonly quiet?: boolean;
  /** commander turns `--no-color` into `color: false`. */
  readonly color?: boolean;
}

/** What a command's `run` receives from the program: parsed, not yet resolved. */
export interface CommandContext {
  readonly command: string;
  readonly globals: GlobalOptions;
  /** The command's own options (its setting flags included). */
  readonly options: Readonly<Record<string, unknown>>;
  /** Setting flags the user gave, as text, for resolveSettings. */
  readonly flags: Partial<Record<SettingKey, string>>;
  readonly args: readonly (string | undefined)[];
}
