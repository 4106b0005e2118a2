import { Command, InvalidArgumentError, Option } from "commander";
import { closest } from "../common/text.ts";
import { stepIds } from "../pipeline/step-ids.ts";
import { flagName, type SettingGroup, type SettingKey, settingKeys, settingsSchema } from "../config/schema.ts";
import type { CommandContext, GlobalOptions } from "./context.ts";

/**
 * The commander program: every command of the contract with its options and help. Actions
 * import their module only when they run, so `llama3-trt ask` never loads the build machinery.
 */
export function buildProgram(version: string, run: (ctx: CommandContext, module: CommandModule) => Promise<void>) {
  const program = new Command("llama3-trt")
    .description(
      "From a bare NVIDIA GPU host to a served Meta Llama 3 on TensorRT-LLM v0.8.0 and Triton:\n" +
        "`build` (clone, download, convert, build the engine, assemble the model repository), `serve`, `ask`.",
    )
    .version(version, "-V, --version", "print the version")
    .helpOption("-h, --help", "show help")
    .option("-w, --workdir <dir>", "working folder (default: $LLAMA3_TRT_WORKDIR, else ./llama3-trt)")
    .option("-c, --config <file>", "settings file (default: ./llama3-trt.yaml or ./llama3-trt.json when present)")
    .option("--json", "print one JSON document on stdout; human logs go to stderr")
    .option("-v, --verbose", "show everything, including each step's full output")
    .option("-q, --quiet", "print only results and errors")
    .option("--no-color", "no colours (also NO_COLOR)")
    .showSuggestionAfterError(true)
    // Both are copied into each subcommand when it is created, so they must come first: commander
    // would otherwise exit with its own code 1 on a usage error, and print errors itself.
    .exitOverride()
    .configureOutput({ outputError: () => {} })
    .addHelpText(
      "after",
      "\nExit codes: 0 success, 1 a step or request failed, 2 usage or configuration error, 130 interrupted.\n" +
        "Settings: flags > LLAMA3_TRT_* environment > llama3-trt.yaml > defaults (`llama3-trt init` writes the file).",
    );

  const command = (
    name: string,
    description: string,
    module: CommandModule,
    settings: readonly SettingGroup[],
  ): Command => {
    const sub = program.command(name).description(description);
    for (const option of settingOptions(settings)) sub.addOption(option);
    sub.action(async (...args: unknown[]) => {
      // commander passes positional arguments, then the options object, then the command.
      const self = args.at(-1) as Command;
      const positional = args.slice(0, -2).map((a) => a as string | undefined);
      await run(
        {
          command: name,
          globals: self.optsWithGlobals<GlobalOptions>(),
          options: self.opts(),
          flags: pickSettingFlags(self.opts()),
          args: positional,
        },
        module,
      );
    });
    return sub;
  };

  command("init", "write llama3-trt.yaml here with every setting, its default and a comment", "init", []).option(
    "--force",
    "overwrite an existing llama3-trt.yaml",
  );

  command(
    "doctor",
    "check the host (Docker, NVIDIA runtime, GPUs, disk, Hugging Face token and access, ports): ok / warning / blocker",
    "doctor",
    ["build", "serve"],
  ).option("--verify", "also re-hash the downloaded weights against their sha256 (reads every byte)");

  withExportOptions(
    command("plan", "print the pipeline without running anything: each step, its state and the exact work (= build --dry-run)", "plan", [
      "build",
    ]).addOption(
      new Option("--target <target>", "local: the pipeline on this host; kubernetes: what `export kubernetes` would write").choices(["local", "kubernetes"]).default("local"),
    ),
  );

  command("build", "run the pipeline steps in order, skipping those already done", "build", ["build"])
    .addOption(stepOption("--only <step>", "run only this step"))
    .addOption(stepOption("--from <step>", "start at this step (earlier steps must be done)"))
    .addOption(
      stepOption("--force [step]", "rebuild even if up to date: every step, or only the one named").preset(true),
    )
    .option("--dry-run", "print the plan instead of running it")
    .option("--verify", "re-hash the downloaded weights against their sha256 (reads every byte) and fetch again what does not match")
    .addHelpText("after", `\nSteps, in order: ${stepIds.join(", ")}.`);

  command("serve", "start Triton on the model repository and wait until it is ready; Ctrl-C stops it", "serve", [
    "serve",
    "build",
  ])
    .option("-d, --detach", "return once the server is ready and leave it running")
    .option("--keep-on-failure", "leave a server that does not get ready as it is, for inspection, instead of removing it")
    .addOption(
      new Option("--timeout <seconds>", "how long to wait for readiness").default("600").argParser(positiveInteger),
    );

  command("stop", "stop and remove the server container that `serve` started, and its OpenAI gateway", "stop", []);

  command("logs", "show the server's log", "logs", [])
    .option("-f, --follow", "keep printing new lines")
    .option("--gateway", "the OpenAI gateway's log instead of Triton's");

  command("status", "the steps, the server and its OpenAI gateway in one view", "status", ["build", "serve"]);

  command("ask", "send one prompt to the served model and print the answer", "ask", ["serve", "build"])
    .argument("<prompt>", "the question or instruction")
    .option("--local", "no server: run TensorRT-LLM's examples/run.py on the engine in the build container")
    .option("--raw", "send the prompt as is, without the Llama 3 chat template")
    .option("--system <text>", "system prompt for the chat template")
    .option("--stream", "print tokens as they arrive (needs the streaming model)")
    .addOption(new Option("--max-tokens <n>", "most tokens to generate").default("256").argParser(positiveInteger))
    .addOption(new Option("--temperature <t>", "sampling temperature").argParser(nonNegativeNumber))
    .addOption(new Option("--top-p <p>", "nucleus sampling probability").argParser(nonNegativeNumber))
    .addOption(new Option("--top-k <k>", "sample from the k most likely tokens").argParser(positiveInteger))
    .option("--openai", "ask through the OpenAI-compatible gateway (`serve` runs it on --openai-port) instead of Triton's generate endpoint")
    .option("--url <url>", "server URL (default: http://<host>:<port> from the settings; with --openai http://<host>:<openai-port>)");

  command(
    "gateway",
    "the OpenAI-compatible API in the foreground, in front of a Triton URL (what `serve` runs beside Triton); Ctrl-C stops it",
    "gateway",
    [],
  )
    .option("--triton-url <url>", "Triton's HTTP URL (default: http://<host>:<port> from the settings)")
    .option("--triton-grpc <host:port>", "Triton's gRPC endpoint, where answers stream and are stopped (default: the host of --triton-url, grpc_port from the settings)")
    .addOption(new Option("--port <port>", "port of the OpenAI API (default: openai_port from the settings, 9000)").argParser(positiveInteger))
    .option("--host <ip>", "address to listen on (default: 127.0.0.1)")
    .option("--model <org/name>", "the model id clients send, the Hugging Face repo name (default: meta-llama/Meta-Llama-3-8B-Instruct)")
    .option("--model-dir <dir>", "folder with the model's tokenizer.json, tokenizer_config.json and generation_config.json (default: the workdir's weights)")
    .option("--max-input-len <tokens>", "longest prompt the engine takes (default: the workdir's engine, else 4096)")
    .option("--max-output-len <tokens>", "most tokens the engine generates (default: the workdir's engine, else 1024)")
    .option("--api-key <key>", "API key clients must send (better: LLAMA3_TRT_API_KEY; never printed)")
    .addOption(new Option("--record <file>", "where the process records its pid (used by `serve`)").hideHelp());

  withExportOptions(
    command(
      "export",
      "write the same build and serving for a Kubernetes GPU cluster: `export kubernetes --out <dir>` (build Job, Triton Deployment, Service, PVC, PDB; HPA and PodMonitor optional) for `kubectl apply -k`",
      "export",
      ["build"],
    )
      .argument("<target>", "kubernetes")
      .option("--out <dir>", "folder to write the manifests to (default: ./llama3-trt-kubernetes)")
      .option("--dry-run", "print what would be written, write nothing"),
  );

  command("clean", "remove built outputs (the Hugging Face cache too with --all)", "clean", []).option(
    "--all",
    "also remove the model from the Hugging Face cache",
  );

  command(
    "bench",
    "load the running deployment and report time to first token, inter-token latency, end-to-end latency and throughput per load point",
    "bench",
    [],
  )
    .option("--url <url>", "server URL (default: http://<host>:<port> from the settings; the gateway's openai_port with --api openai, its key from LLAMA3_TRT_API_KEY)")
    .addOption(new Option("--api <api>", "which API to load").choices(["triton", "openai"]).default("triton"))
    .option("--model-dir <dir>", "the model's Hugging Face folder, for its tokenizer (default: the weights this workdir built from)")
    .option("--model <name>", "--api openai: the model name to ask for (default: the first of GET /v1/models)")
    .addOption(new Option("--concurrency <list>", "concurrent clients per load point, a sweep (default: 1,4,16)").argParser(positiveList))
    .addOption(new Option("--rate <list>", "instead: Poisson arrivals, requests per second per load point (e.g. 1,2,4)").argParser(positiveNumberList))
    .addOption(new Option("--requests <n>", "measured requests per load point (default: 4 x concurrency, at least 16)").argParser(positiveInteger))
    .addOption(new Option("--duration <seconds>", "instead: send new requests for this long per load point").argParser(positiveNumber))
    .addOption(new Option("--input-len <tokens>", "synthetic prompt length in the model's tokens").default(128).argParser(positiveInteger))
    .addOption(new Option("--input-stddev <tokens>", "spread of the prompt length (normal)").default(0).argParser(nonNegativeInteger))
    .addOption(new Option("--output-len <tokens>", "tokens to generate per request").default(128).argParser(positiveInteger))
    .addOption(new Option("--output-stddev <tokens>", "spread of the output length (normal)").default(0).argParser(nonNegativeInteger))
    .option("--prompts <file.jsonl>", "prompts from a file instead: one a line, \"text\" or {\"text\": \"...\"}")
    .addOption(new Option("--warmup <n>", "requests before each load point that are not counted (default: one per client)").argParser(nonNegativeInteger))
    .addOption(new Option("--seed <n>", "seed of the synthetic workload (same seed, same prompts)").default(0).argParser(nonNegativeInteger))
    .option("--plot <file>", "write a self-contained SVG of throughput against latency across the sweep")
    .option("--compare <files...>", "print the differences between two `bench --json` results (a.json b.json) and exit")
    .addHelpText(
      "after",
      "\nMetrics as `vllm bench serve` and GenAI-Perf define them: TTFT (send → first token), ITL (gaps between streamed tokens),\n" +
        "TPOT ((e2e - TTFT) / (output tokens - 1)), e2e latency; throughput per second of the point's duration.\n" +
        "--api openai reads the gateway's key from LLAMA3_TRT_API_KEY.",
    );

  return program;
}

export type CommandModule = "init" | "doctor" | "plan" | "build" | "serve" | "stop" | "logs" | "status" | "ask" | "clean" | "bench" | "export" | "gateway";

/** The cluster's facts the export needs, on `export` and on `plan --target kubernetes`. */
function withExportOptions(command: Command): Command {
  return command
    .addOption(new Option("--gpus-per-node <n>", "(kubernetes) GPUs on each node: an engine's tp must fit on one").default("8").argParser(positiveInteger))
    .option("--gpu-product <label>", "(kubernetes) the nodes' nvidia.com/gpu.product (default: from --gpu, else this host's GPUs)")
    .addOption(new Option("--namespace <name>", "(kubernetes) namespace in kustomization.yaml").default("llama3-trt").argParser(dnsLabel));
}

function dnsLabel(value: string): string {
  if (!/^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$/.test(value)) {
    throw new InvalidArgumentError(`expected a namespace name (lower-case letters, digits and -, at most 63), got "${value}"`);
  }
  return value;
}

/** Setting flags have no commander default: a default here would hide the file and env values. */
function settingOptions(groups: readonly SettingGroup[]): Option[] {
  return settingKeys
    .filter((key) => settingsSchema[key].flag && groups.includes(settingsSchema[key].group))
    .map((key) => {
      const spec = settingsSchema[key];
      const hint = spec.valueHint.startsWith("<") ? spec.valueHint : `<${spec.valueHint}>`;
      const shown = spec.default === null ? "" : ` (default: ${String(spec.default)})`;
      return new Option(`${flagName(key)} ${hint}`, `${spec.description}${shown}`);
    });
}

function pickSettingFlags(options: Record<string, unknown>): Partial<Record<SettingKey, string>> {
  const flags: Partial<Record<SettingKey, string>> = {};
  for (const key of settingKeys) {
    const value = options[key];
    if (typeof value === "string") flags[key] = value;
  }
  return flags;
}

function stepOption(flags: string, description: string): Option {
  return new Option(flags, description).argParser((value: string | true) => {
    // `--force` alone arrives here as its preset, `true`: every step.
    if (value === true || (stepIds as readonly string[]).includes(value)) return value;
    const suggestion = closest(value, stepIds);
    throw new InvalidArgumentError(
      `unknown step \`${value}\`${suggestion ? ` (did you mean \`${suggestion}\`?)` : ""}; steps are ${stepIds.join(", ")}`,
    );
  });
}

function positiveInteger(value: string): number {
  if (!/^\d+$/.test(value) || Number(value) < 1) throw new InvalidArgumentError(`expected a positive integer, got "${value}"`);
  return Number(value);
}

function nonNegativeInteger(value: string): number {
  if (!/^\d+$/.test(value)) throw new InvalidArgumentError(`expected a whole number >= 0, got "${value}"`);
  return Number(value);
}

function positiveNumber(value: string): number {
  const n = Number(value);
  if (value.trim() === "" || !Number.isFinite(n) || n <= 0) throw new InvalidArgumentError(`expected a number > 0, got "${value}"`);
  return n;
}

/** "1,4,16" → [1, 4, 16]. */
function positiveList(value: string): number[] {
  return value.split(",").map((v) => positiveInteger(v.trim()));
}

function positiveNumberList(value: string): number[] {
  return value.split(",").map((v) => positiveNumber(v.trim()));
}

function nonNegativeNumber(value: string): number {
  const n = Number(value);
  if (value.trim() === "" || !Number.isFinite(n) || n < 0) throw new InvalidArgumentError(`expected a number >= 0, got "${value}"`);
  return n;
}
