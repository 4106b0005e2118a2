import { existsSync, mkdirSync, rmSync, readFileSync, writeFileSync } from "node:fs";
import { freePort } from "../helpers/ports.ts";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { renderSettingsTable } from "../../src/config/init-template.ts";
import { baseEnv, cli } from "../helpers/cli.ts";
import { tempDir } from "../helpers/tmp.ts";

const commands = ["init", "doctor", "plan", "build", "serve", "stop", "logs", "status", "ask", "clean", "gateway"] as const;
const pkg = JSON.parse(readFileSync(new URL("../../package.json", import.meta.url), "utf8")) as { version: string };

describe("help", () => {
  it("lists every command of the contract", async () => {
    using dir = tempDir();
    const { exitCode, stdout } = await cli(["--help"], { cwd: dir.path });
    expect(exitCode).toBe(0);
    for (const command of commands) expect(stdout).toMatch(new RegExp(`^  ${command}\\b`, "m"));
    for (const flag of ["--workdir", "--config", "--json", "--verbose", "--quiet", "--no-color", "--version"]) {
      expect(stdout).toContain(flag);
    }
  });

  it.each(commands)("`%s --help` describes the command and exits 0", async (command) => {
    using dir = tempDir();
    const { exitCode, stdout } = await cli([command, "--help"], { cwd: dir.path });
    expect(exitCode).toBe(0);
    expect(stdout).toMatch(new RegExp(`^Usage: llama3-trt ${command} `));
  });

  it("shows each command's own options", async () => {
    using dir = tempDir();
    const expected: Record<string, string[]> = {
      build: ["--only <step>", "--from <step>", "--force [step]", "--dry-run", "--dtype", "--tp", "--quantize", "--max-batch-size", "--max-input-len", "--max-output-len", "--gpus", "--gpu", "--model", "--revision", "--model-dir"],
      plan: ["--dtype", "--gpus", "--gpu"],
      doctor: ["--verify", "--model", "--tp", "--gpu"],
      serve: ["--detach", "--timeout", "--port", "--grpc-port", "--metrics-port", "--host"],
      ask: ["<prompt>", "--local", "--raw", "--stream", "--max-tokens", "--temperature", "--top-p", "--top-k", "--url", "--system"],
      logs: ["--follow"],
      clean: ["--all"],
      init: ["--force"],
    };
    for (const [command, flags] of Object.entries(expected)) {
      const { stdout } = await cli([command, "--help"], { cwd: dir.path });
      for (const flag of flags) expect(stdout, `${command} ${flag}`).toContain(flag);
    }
  });

  it("prints the package version", async () => {
    using dir = tempDir();
    const { exitCode, stdout } = await cli(["--version"], { cwd: dir.path });
    expect(exitCode).toBe(0);
    expect(stdout.trim()).toBe(pkg.version);
  });
});

describe("usage errors exit 2", () => {
  it.each([
    [["build", "--frobnicate"], "unknown option '--frobnicate'"],
    [["frobnicate"], "unknown command 'frobnicate'"],
    [["ask"], "missing required argument 'prompt'"],
    [["build", "--tp"], "option '--tp <n>' argument missing"],
    [["build", "--only", "engin"], "unknown step `engin` (did you mean `engine`?)"],
    [["serve", "--timeout", "soon"], 'expected a positive integer, got "soon"'],
    [["build", "--dtype", "fp8"], '--dtype: expected one of bfloat16, float16, got "fp8"'],
  ])("%j", async (args, message) => {
    using dir = tempDir();
    const { exitCode, stderr, stdout } = await cli(args, { cwd: dir.path });
    expect(exitCode).toBe(2);
    expect(stderr).toContain(message);
    expect(stdout).toBe("");
  });

  it("names the command's help in the hint", async () => {
    using dir = tempDir();
    const { stderr } = await cli(["build", "--frobnicate"], { cwd: dir.path });
    expect(stderr).toContain("See `llama3-trt build --help`.");
  });

  it("is one JSON document on stdout with --json", async () => {
    using dir = tempDir();
    const { exitCode, stdout } = await cli(["build", "--json", "--frobnicate"], { cwd: dir.path });
    expect(exitCode).toBe(2);
    const doc = JSON.parse(stdout) as { error: { kind: string; exitCode: number; message: string } };
    expect(doc.error).toMatchObject({ kind: "usage", exitCode: 2 });
    expect(doc.error.message).toContain("unknown option '--frobnicate'");
  });

  it("without a command prints the help and exits 2", async () => {
    using dir = tempDir();
    const { exitCode, stderr } = await cli([], { cwd: dir.path });
    expect(exitCode).toBe(2);
    expect(stderr).toContain("Usage: llama3-trt");
  });
});

describe("configuration through the CLI", () => {
  it("an invalid config file exits 2 naming the key, for every command that reads settings", async () => {
    using dir = tempDir();
    writeFileSync(join(dir.path, "llama3-trt.yaml"), "max_batchsize: 8\n");
    for (const command of ["doctor", "plan", "build", "status", "clean", "serve", "stop", "logs", "ask hi", "ask --local hi"]) {
      const { exitCode, stderr } = await cli(command.split(" "), { cwd: dir.path });
      expect(exitCode, command).toBe(2);
      expect(stderr, command).toContain("unknown key `max_batchsize` (did you mean `max_batch_size`?)");
    }
  });

  it("serve refuses a malformed config before anything starts, one line per field (case 34)", async () => {
    using dir = tempDir();
    writeFileSync(join(dir.path, "llama3-trt.yaml"), 'port: "80a"\nhost: localhost\nstreaming: yes\ndtype: fp8\n');
    const { exitCode, stderr } = await cli(["serve", "--detach"], { cwd: dir.path });
    expect(exitCode).toBe(2);
    const path = join(dir.path, "llama3-trt.yaml");
    expect(stderr).toContain(`port in ${path}: expected an integer from 1 to 65535, got "80a"`);
    expect(stderr).toContain(`host in ${path}: expected an IPv4 address such as \`127.0.0.1\` or \`0.0.0.0\`, got "localhost"`);
    expect(stderr).toContain(`streaming in ${path}: expected true or false, got "yes"`);
    expect(stderr).toContain(`dtype in ${path}: expected one of bfloat16, float16, got "fp8"`);
    writeFileSync(path, "port: [8000\n");
    const syntax = await cli(["serve"], { cwd: dir.path });
    expect(syntax.exitCode).toBe(2);
    expect(syntax.stderr).toMatch(new RegExp(`${path.replace(/[.*+?^${}()|[\]\\/]/g, "\\$&")}:\\d+:\\d+: `));
    expect(existsSync(join(dir.path, "llama3-trt"))).toBe(false);
  });

  it("an alias bomb and a duplicate JSON key are refused through the CLI, nothing run (cases 34d, 34e)", async () => {
    using dir = tempDir();
    const levels = ["a: &a [x, x, x, x, x, x, x, x, x]"];
    for (let i = 1; i <= 8; i++) levels.push(`${"abcdefghi"[i]}: &${"abcdefghi"[i]} [${Array(9).fill(`*${"abcdefghi"[i - 1]}`).join(", ")}]`);
    writeFileSync(join(dir.path, "llama3-trt.yaml"), `${levels.join("\n")}\n`);
    const bomb = await cli(["build"], { cwd: dir.path });
    expect(bomb.exitCode).toBe(2);
    expect(bomb.stderr).toContain(`${join(dir.path, "llama3-trt.yaml")}: Excessive alias count indicates a resource exhaustion attack`);
    rmSync(join(dir.path, "llama3-trt.yaml"));
    writeFileSync(join(dir.path, "llama3-trt.json"), '{ "tp": 1, "tp": 2 }');
    const duplicate = await cli(["plan"], { cwd: dir.path });
    expect(duplicate.exitCode).toBe(2);
    expect(duplicate.stderr).toMatch(/llama3-trt\.json:1:\d+: Map keys must be unique/);
    expect(existsSync(join(dir.path, "llama3-trt"))).toBe(false);
  });

  it.each([
    ["HF_ENDPOINT", "not a url", ["plan", "build", "doctor --json"], 'HF_ENDPOINT must be an http:// or https:// URL without credentials or query, such as https://huggingface.co; got "not a url".'],
    ["HF_ENDPOINT", "ftp://x", ["plan", "build"], 'HF_ENDPOINT must be an http:// or https:// URL without credentials or query, such as https://huggingface.co; got "ftp://x".'],
    ["DOCKER_HOST", "ssh://host", ["plan", "build", "status"], 'DOCKER_HOST must be unix:///path/to/docker.sock or tcp://host:port; got "ssh://host".'],
    ["DOCKER_HOST", "/var/run/docker.sock", ["build"], 'DOCKER_HOST must be unix:///path/to/docker.sock or tcp://host:port; got "/var/run/docker.sock".'],
  ])("%s=%j is a configuration error (exit 2) naming it and its form, at once", async (name, value, commands, message) => {
    using dir = tempDir();
    for (const command of commands) {
      const started = Date.now();
      const result = await cli(command.split(" "), { cwd: dir.path, env: baseEnv({ [name]: value, HF_TOKEN: "hf_aaaaaaaaaaaaaaaaaaaaaaaa", HOME: dir.path }) });
      expect(result.exitCode, `${command}: ${result.stderr}${result.stdout}`).toBe(2);
      const said = command.includes("--json") ? (JSON.parse(result.stdout) as { error: { message: string } }).error.message : result.stderr;
      expect(said).toContain(message);
      expect(result.stderr + result.stdout).not.toContain("internal error");
      // Refused, not retried: well before a single backoff of one second.
      expect(Date.now() - started).toBeLessThan(3_000);
    }
  });

  it("a token file that cannot be read is a configuration error naming it", async () => {
    using dir = tempDir();
    // A folder where the file should be: unreadable as a file whoever runs this (root reads any file).
    mkdirSync(join(dir.path, ".cache/huggingface/token"), { recursive: true });
    const result = await cli(["plan"], { cwd: dir.path, env: baseEnv({ HOME: dir.path }) });
    expect(result.exitCode).toBe(2);
    expect(result.stderr).toContain(`The Hugging Face token file ${join(dir.path, ".cache/huggingface/token")} cannot be read (EISDIR).`);
  });

  it("an invalid environment value exits 2 naming the variable", async () => {
    using dir = tempDir();
    const { exitCode, stderr } = await cli(["plan"], { cwd: dir.path, env: baseEnv({ LLAMA3_TRT_GPUS: "some" }) });
    expect(exitCode).toBe(2);
    expect(stderr).toContain("LLAMA3_TRT_GPUS: expected `all`, `none`");
  });

  it("--config points at another file", async () => {
    using dir = tempDir();
    writeFileSync(join(dir.path, "mine.json"), '{"tp": 65}');
    const { exitCode, stderr } = await cli(["plan", "-c", "mine.json"], { cwd: dir.path });
    expect(exitCode).toBe(2);
    expect(stderr).toContain(`tp in ${join(dir.path, "mine.json")}: expected an integer from 1 to 64, got 65`);
  });
});

describe("serve and ask without a server or a build", () => {
  it("`serve` in an empty workdir says nothing is built and creates nothing", async () => {
    using dir = tempDir();
    const { exitCode, stderr } = await cli(["serve"], { cwd: dir.path });
    expect(exitCode).toBe(1);
    expect(stderr).toContain(`Nothing to serve yet in ${join(dir.path, "llama3-trt")}: weights, engine, model-repo not built. Run \`llama3-trt build\` first.`);
    expect(existsSync(join(dir.path, "llama3-trt"))).toBe(false);
  });

  it("`ask` with no server answering says so, with the URL and what to do (exit 1)", async () => {
    using dir = tempDir();
    const port = await freePort();
    const { exitCode, stderr } = await cli(["ask", "hello", "--url", `http://127.0.0.1:${port}`], { cwd: dir.path });
    expect(exitCode).toBe(1);
    expect(stderr).toContain(`No server answers at http://127.0.0.1:${port} (connection refused). Start it with \`llama3-trt serve\``);
  });

  it("`ask --json` reports the failure as data", async () => {
    using dir = tempDir();
    const { exitCode, stdout } = await cli(["ask", "hello", "--url", `http://127.0.0.1:${await freePort()}`, "--json"], { cwd: dir.path });
    expect(exitCode).toBe(1);
    expect(JSON.parse(stdout)).toMatchObject({ error: { kind: "server-unreachable", exitCode: 1 } });
  });

  it.each([
    [["ask", "hi", "--raw", "--system", "be brief"], "--system needs the chat template, which --raw turns off"],
    [["ask", "hi", "--system", "be brief", "--model", "meta-llama/Meta-Llama-3-8B"], "meta-llama/Meta-Llama-3-8B does not have (a base model: its tokenizer_config.json has no chat_template)"],
    [["ask", "hi", "--local", "--stream"], "--local prints the answer when run.py ends: drop `--stream`"],
    [["ask", "hi", "--url", "ftp://x"], "--url must be an http:// or https:// URL"],
    [["ask", " "], "The prompt is empty"],
    [["ask", "hi", "--max-tokens", "0"], 'expected a positive integer, got "0"'],
    [["serve", "--streaming", "maybe"], "--streaming: expected true or false"],
  ])("%j is a usage error (exit 2)", async (args, message) => {
    using dir = tempDir();
    const { exitCode, stderr } = await cli(args, { cwd: dir.path });
    expect(exitCode).toBe(2);
    expect(stderr).toContain(message);
  });
});

describe("init", () => {
  it("writes llama3-trt.yaml, refuses to overwrite it, and overwrites with --force", async () => {
    using dir = tempDir();
    const first = await cli(["init"], { cwd: dir.path });
    expect(first.exitCode).toBe(0);
    const path = join(dir.path, "llama3-trt.yaml");
    expect(readFileSync(path, "utf8")).toContain("max_batch_size: 64");
    writeFileSync(path, "tp: 2\n");
    const second = await cli(["init"], { cwd: dir.path });
    expect(second.exitCode).toBe(2);
    expect(second.stderr).toContain("already exists");
    expect(readFileSync(path, "utf8")).toBe("tp: 2\n");
    const forced = await cli(["init", "--force", "--json"], { cwd: dir.path });
    expect(forced.exitCode).toBe(0);
    expect(JSON.parse(forced.stdout)).toEqual({ written: path });
    expect(readFileSync(path, "utf8")).toContain("max_batch_size: 64");
  });
});

describe("README", () => {
  it("carries the settings table generated from the schema", () => {
    const readme = readFileSync(new URL("../../README.md", import.meta.url), "utf8");
    expect(readme).toContain(renderSettingsTable());
  });
});
