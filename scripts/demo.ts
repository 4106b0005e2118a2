/**
 * `npm run demo`: the whole job on a machine without a GPU. It starts the test world (Docker, a
 * local registry, stand-ins of NVIDIA's tools and of the Hugging Face Hub), then runs the real
 * CLI as a user would: `build`, `serve --detach`, `ask`, `status`, `stop`, in a temporary
 * workdir. It stops what it started and removes the workdir, also on Ctrl-C or a failure.
 *
 * Needs root on Debian (the world installs docker.io and docker-registry when missing) and a
 * built CLI (`npm ci` builds it).
 */
import { spawn } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { freePorts } from "../test/helpers/ports.ts";
import { createLog } from "../world/log.ts";
import { worldConfig } from "../world/paths.ts";
import { worldDown, worldUp } from "../world/world.ts";

const bin = fileURLToPath(new URL("../bin/llama3-trt.js", import.meta.url));
const say = (text: string) => process.stdout.write(`\n\u001b[1m${text}\u001b[22m\n`);

say(
  "llama3-trt demo: the real CLI against its test world. NVIDIA's images and tools, the GPU and the " +
    "Hugging Face Hub are stand-ins here, so the answer at the end comes from a stand-in model.",
);

const config = worldConfig();
const log = createLog({ file: join(config.files.logs, "demo.log"), echo: true, truncate: true });
const home = mkdtempSync(join(tmpdir(), "llama3-trt-demo-"));
let started: Awaited<ReturnType<typeof worldUp>>["startedNow"] = [];
let env: Record<string, string> = {};
let interrupted = false;
let serving = false;

/** Runs the CLI with its output shown; resolves with its exit code. */
function cli(args: string[]): Promise<number> {
  process.stdout.write(`\n$ llama3-trt ${args.map((a) => (/\s/.test(a) ? JSON.stringify(a) : a)).join(" ")}\n`);
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [bin, ...args], { cwd: home, env, stdio: ["ignore", "inherit", "inherit"] });
    child.on("exit", (code) => resolve(code ?? 1));
  });
}

async function cleanUp(): Promise<void> {
  if (serving) await cli(["stop"]).catch(() => 1);
  if (started.length > 0) {
    say(`Stopping what the demo started: ${started.join(", ")}`);
    await worldDown({ log, only: started }).catch((error: unknown) => process.stderr.write(`world:down: ${String(error)}\n`));
  }
  rmSync(home, { recursive: true, force: true });
}

process.once("SIGINT", () => {
  interrupted = true;
});

let exitCode = 0;
try {
  say("1/6 Starting the test world (the first time: Debian packages and a debootstrap image, a few minutes)");
  const world = await worldUp({ log });
  started = world.startedNow;
  // Ports nothing else uses here, so that the demo does not trip over a server already running.
  env = { PATH: process.env.PATH ?? "/usr/bin:/bin", HOME: home, NO_COLOR: process.env.NO_COLOR ?? "", ...world.file.env, ...(await freePorts()).env };
  const steps: [string, string[]][] = [
    ["2/6 Building: clone, download, convert, build the engine, fill the model repository", ["build"]],
    ["3/6 Serving: Triton on the model repository, until it is ready", ["serve", "--detach"]],
    ["4/6 Asking", ["ask", "How do I count to nine in French?"]],
    ["5/6 What is there", ["status"]],
    ["6/6 Stopping the server", ["stop"]],
  ];
  for (const [title, args] of steps) {
    if (interrupted) throw new Error("interrupted");
    say(title);
    serving ||= args[0] === "serve";
    const code = await cli(args);
    if (args[0] === "stop" && code === 0) serving = false;
    if (code !== 0) throw new Error(`llama3-trt ${args[0]} exited with ${code}`);
  }
  say("Done. On a GPU host with Docker and the NVIDIA Container Toolkit, the same three commands do it for real:");
  process.stdout.write("  npx llama3-trt build\n  npx llama3-trt serve --detach\n  npx llama3-trt ask \"How do I count to nine in French?\"\n");
} catch (error) {
  process.stderr.write(`\ndemo failed: ${error instanceof Error ? error.message : String(error)} (log: ${join(config.files.logs, "demo.log")})\n`);
  exitCode = interrupted ? 130 : 1;
} finally {
  await cleanUp();
}
process.exitCode = exitCode;
