import { createWriteStream, type WriteStream } from "node:fs";
import { mkdir } from "node:fs/promises";
import { dirname } from "node:path";
import { redact } from "../common/redact.ts";

/** How many of the last lines a failure message quotes. */
export const tailLines = 20;

/**
 * A step's log: every line goes to `logs/<step>.log` (redacted), the last few are kept for the
 * failure message, and `onLine` feeds the progress display.
 */
export class StepLog {
  readonly path: string;
  readonly #tail: string[] = [];
  #stream: WriteStream | undefined;
  #onLine: (line: string) => void = () => {};

  constructor(path: string) {
    this.path = path;
  }

  async open(onLine: (line: string) => void): Promise<void> {
    await mkdir(dirname(this.path), { recursive: true });
    // A fresh log per run of the step: the file shows the run that matters, not a history.
    this.#stream = createWriteStream(this.path, { flags: "w", mode: 0o644 });
    this.#onLine = onLine;
  }

  line(text: string): void {
    const clean = redact(text);
    this.#tail.push(clean);
    if (this.#tail.length > tailLines) this.#tail.shift();
    this.#stream?.write(`${clean}\n`);
    this.#onLine(clean);
  }

  /** A note from the tool itself rather than from the tool it drives. */
  note(text: string): void {
    this.line(`[llama3-trt] ${text}`);
  }

  tail(): readonly string[] {
    return [...this.#tail];
  }

  async close(): Promise<void> {
    const stream = this.#stream;
    this.#stream = undefined;
    if (stream) await new Promise<void>((resolve) => stream.end(resolve));
  }
}
