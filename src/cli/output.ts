import { redact } from "../common/redact.ts";

/**
 * Where and how the CLI speaks: human text or one JSON document, colour or not, progress as a
 * live display (a person at a terminal) or plain lines (CI, pipes). Decided once, here.
 */
export interface OutputOptions {
  readonly json: boolean;
  readonly verbose: boolean;
  readonly quiet: boolean;
  /** `--no-color` was given. */
  readonly noColor: boolean;
}

export interface Terminal {
  readonly stdoutIsTTY: boolean;
  readonly stderrIsTTY: boolean;
  readonly env: Readonly<Record<string, string | undefined>>;
}

export class Output {
  readonly json: boolean;
  readonly verbose: boolean;
  readonly quiet: boolean;
  /** Live progress and prompts are allowed: a TTY, and not CI. */
  readonly interactive: boolean;
  readonly color: boolean;
  readonly #stdout: NodeJS.WritableStream;
  readonly #stderr: NodeJS.WritableStream;

  constructor(
    options: OutputOptions,
    terminal: Terminal,
    streams: { stdout: NodeJS.WritableStream; stderr: NodeJS.WritableStream },
  ) {
    this.json = options.json;
    this.verbose = options.verbose;
    this.quiet = options.quiet && !options.verbose;
    this.interactive = terminal.stdoutIsTTY && !isCI(terminal.env);
    // https://no-color.org: any non-empty NO_COLOR disables colour.
    this.color = !options.noColor && !terminal.env.NO_COLOR && terminal.stderrIsTTY && !isCI(terminal.env);
    this.#stdout = streams.stdout;
    this.#stderr = streams.stderr;
  }

  /** The command's result for a person (stdout), or nothing with --json: the document carries it. */
  result(text: string): void {
    if (!this.json) this.#stdout.write(`${redact(text)}\n`);
  }

  /** Part of a result as it arrives (a streamed answer); nothing with --json. */
  partial(text: string): void {
    if (!this.json) this.#stdout.write(redact(text));
  }

  /** Progress and information: stdout for people, stderr under --json so stdout stays one document. */
  info(text: string): void {
    if (this.quiet) return;
    (this.json ? this.#stderr : this.#stdout).write(`${redact(text)}\n`);
  }

  /** Only with -v. */
  debug(text: string): void {
    if (this.verbose) this.#stderr.write(`${redact(text)}\n`);
  }

  warn(text: string): void {
    this.#stderr.write(`${this.paint("warning:", "yellow")} ${redact(text)}\n`);
  }

  error(text: string): void {
    this.#stderr.write(`${this.paint("error:", "red")} ${redact(text)}\n`);
  }

  /** The one JSON document of a --json run (result or error), redacted like everything else. */
  document(value: unknown): void {
    this.#stdout.write(`${redact(JSON.stringify(value, null, 2))}\n`);
  }

  paint(text: string, colour: "red" | "yellow" | "green" | "dim" | "bold"): string {
    if (!this.color) return text;
    const codes = { red: [31, 39], yellow: [33, 39], green: [32, 39], dim: [2, 22], bold: [1, 22] }[colour];
    return `\u001b[${codes[0]}m${text}\u001b[${codes[1]}m`;
  }
}

/** CI services set CI (GitHub, GitLab, Buildkite, CircleCI…); `CI=false`/`0` means a person set it off. */
export function isCI(env: Readonly<Record<string, string | undefined>>): boolean {
  const value = env.CI;
  return value !== undefined && value !== "" && value !== "0" && value.toLowerCase() !== "false";
}
