/**
 * Progress of `world:up` / `world:down`: one line per step, echoed to the terminal when run by
 * hand, always appended to a log file together with the verbose output of apt-get,
 * debootstrap and docker builds (which only matters when something fails).
 */
import { appendFileSync, mkdirSync, writeFileSync } from "node:fs";
import path from "node:path";

export interface Log {
  /** A progress line. */
  (message: string): void;
  /** Verbose output of a tool: the log file only. */
  detail?: (text: string) => void;
  /** The file everything goes to, for "see <file>" in error messages. */
  file?: string;
}

/** `truncate`: start the file anew (one run per file, so its tail is this run's). */
export function createLog(options: { file: string; echo: boolean; truncate?: boolean }): Log {
  mkdirSync(path.dirname(options.file), { recursive: true });
  if (options.truncate) writeFileSync(options.file, "");
  const started = Date.now();
  const stamp = () => `[${((Date.now() - started) / 1000).toFixed(1).padStart(6)} s]`;
  const log: Log = (message: string) => {
    appendFileSync(options.file, `${new Date().toISOString()} ${message}\n`);
    if (options.echo) process.stderr.write(`${stamp()} ${message}\n`);
  };
  log.detail = (text: string) => {
    if (text.trim()) appendFileSync(options.file, text.endsWith("\n") ? text : `${text}\n`);
  };
  log.file = options.file;
  return log;
}

/** Discards everything: for probes that must not write anywhere. */
export const silentLog: Log = () => {};
