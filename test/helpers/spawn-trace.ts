/**
 * Preloaded into the CLI under test (`node --import <this file> …`) when a test asks for it:
 * records every child process the CLI starts — program, argv and the environment it really
 * gets (its own `env`, or the CLI's, inherited) — one JSON line each in
 * $LLAMA3_TRT_TEST_SPAWN_LOG. Reliability case 38: "trace every spawn".
 *
 * It wraps node:child_process's exports, then syncs the ES-module view of them, so that
 * execa, simple-git and the product's own imports all go through it.
 */
import childProcess from "node:child_process";
import { appendFileSync } from "node:fs";
import { syncBuiltinESMExports } from "node:module";

export interface SpawnRecord {
  readonly fn: string;
  readonly file: string;
  readonly args: readonly string[];
  readonly env: Readonly<Record<string, string | undefined>>;
  readonly shell: boolean;
}

const log = process.env["LLAMA3_TRT_TEST_SPAWN_LOG"];

type Options = { env?: NodeJS.ProcessEnv; shell?: boolean | string } | undefined;

/** Picks (file, args, options) out of the overloads of spawn/execFile/exec/fork and their Sync forms. */
function normalise(fn: string, input: unknown[]): SpawnRecord {
  const [file, second, third] = input;
  const args = Array.isArray(second) ? (second as string[]) : [];
  const options = (Array.isArray(second) ? third : second) as Options;
  const viaShell = fn === "exec" || fn === "execSync" || Boolean(options?.shell);
  return { fn, file: String(file), args: args.map(String), env: { ...(options?.env ?? process.env) }, shell: viaShell };
}

if (log) {
  const names = ["spawn", "spawnSync", "execFile", "execFileSync", "exec", "execSync", "fork"] as const;
  const module = childProcess as unknown as Record<string, (...args: unknown[]) => unknown>;
  for (const name of names) {
    const original = module[name];
    if (typeof original !== "function") continue;
    module[name] = function traced(this: unknown, ...input: unknown[]) {
      appendFileSync(log, `${JSON.stringify(normalise(name, input))}\n`);
      return original.apply(this, input);
    };
  }
  syncBuiltinESMExports();
}
