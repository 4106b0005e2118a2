import { CommanderError } from "commander";
import { isKnownError, UsageError, type ExitCode } from "../common/errors.ts";
import { configureTestHooks } from "../common/test-hooks.ts";
import { Output } from "./output.ts";
import { buildProgram, type CommandModule } from "./program.ts";
import type { CommandContext } from "./context.ts";
import type { CommandRun } from "./commands/command.ts";

import { version } from "./version.ts";

/**
 * The one place where errors become exit codes and messages. It sets process.exitCode rather
 * than calling process.exit, so disposers and interrupt handlers still run to the end.
 */
export async function main(argv: readonly string[]): Promise<void> {
  // Nothing this tool creates is writable by other users, whatever umask it was started with
  // (case 40c); group permissions are the user's to choose (a group-shared Hugging Face cache).
  process.umask(process.umask() | 0o002);
  configureTestHooks(process.env);
  const terminal = {
    stdoutIsTTY: Boolean(process.stdout.isTTY),
    stderrIsTTY: Boolean(process.stderr.isTTY),
    env: process.env,
  };
  const streams = { stdout: process.stdout, stderr: process.stderr };
  // Until commander has parsed the line, guess the output mode from it, so that a usage error
  // under --json is still reported as a JSON document.
  const has = (...names: string[]) => argv.some((a) => names.includes(a));
  let output = new Output(
    { json: has("--json"), verbose: has("-v", "--verbose"), quiet: has("-q", "--quiet"), noColor: has("--no-color") },
    terminal,
    streams,
  );

  const program = buildProgram(version, async (ctx: CommandContext, module: CommandModule) => {
    const g = ctx.globals;
    output = new Output(
      { json: g.json ?? false, verbose: g.verbose ?? false, quiet: g.quiet ?? false, noColor: g.color === false },
      terminal,
      streams,
    );
    const { run } = (await loadCommand(module)) as { run: CommandRun };
    // How to start this CLI again (serve starts its gateway so): node, its flags, the entry script.
    const self = { execPath: process.execPath, args: [...process.execArgv, ...(process.argv[1] ? [process.argv[1]] : [])] };
    await run({ ...ctx, output, env: process.env, cwd: process.cwd(), self });
  });
  try {
    await program.parseAsync(argv);
    // A command that reported its own failure in its document (doctor's blockers) set 1 already.
    process.exitCode ??= 0;
  } catch (error) {
    const commandName = argv.slice(2).find((arg) => program.commands.some((c) => c.name() === arg));
    process.exitCode = report(error, output, commandName);
  }
}

/** Each command module is imported only when that command runs. */
function loadCommand(module: CommandModule): Promise<unknown> {
  switch (module) {
    case "init":
      return import("./commands/init.ts");
    case "doctor":
      return import("./commands/doctor.ts");
    case "plan":
      return import("./commands/plan.ts");
    case "build":
      return import("./commands/build.ts");
    case "serve":
      return import("./commands/serve.ts");
    case "stop":
      return import("./commands/stop.ts");
    case "logs":
      return import("./commands/logs.ts");
    case "status":
      return import("./commands/status.ts");
    case "ask":
      return import("./commands/ask.ts");
    case "clean":
      return import("./commands/clean.ts");
    case "bench":
      return import("./commands/bench.ts");
    case "export":
      return import("./commands/export.ts");
    case "gateway":
      return import("./commands/gateway.ts");
  }
}

function report(error: unknown, output: Output, commandName?: string): ExitCode {
  if (error instanceof CommanderError) {
    // --help and --version end through here with exit code 0.
    if (error.exitCode === 0) return 0;
    // `llama3-trt` alone: commander has printed the help; that is a usage error.
    if (error.code === "commander.help") return 2;
    const help = commandName ? `llama3-trt ${commandName} --help` : "llama3-trt --help";
    return report(new UsageError(`${error.message.replace(/^error: /, "")}\nSee \`${help}\`.`), output);
  }
  if (isKnownError(error)) {
    if (output.json) {
      output.document({ error: { kind: error.kind, message: error.message, exitCode: error.exitCode, ...details(error) } });
    } else {
      output.error(error.message);
    }
    // -v: what the message was made from (a socket error, an HTTP answer), with its stack.
    const cause = (error as { cause?: unknown }).cause;
    if (output.verbose && cause !== undefined) output.debug(`caused by: ${cause instanceof Error ? (cause.stack ?? cause.message) : String(cause)}`);
    return error.exitCode as ExitCode;
  }
  const bug = error instanceof Error ? error : new Error(String(error));
  const message =
    `internal error (this is a bug in llama3-trt ${version}, Node ${process.versions.node}): ${bug.message}\n` +
    "Please report it with the command you ran; run again with -v for the stack trace.";
  if (output.json) output.document({ error: { kind: "internal", message, exitCode: 1 } });
  else output.error(message);
  if (output.verbose && bug.stack) output.debug(bug.stack);
  return 1;
}

/** Extra machine-readable fields an error carries (e.g. the step and its log file). */
function details(error: object): Record<string, unknown> {
  const extra: Record<string, unknown> = {};
  for (const key of ["step", "logFile", "issues", "refusals"] as const) {
    if (key in error) extra[key] = (error as Record<string, unknown>)[key];
  }
  return extra;
}
