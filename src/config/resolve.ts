import { existsSync, readFileSync, realpathSync } from "node:fs";
import { basename, dirname, extname, isAbsolute, join, resolve as resolvePath } from "node:path";
import { createRequire } from "node:module";
import { ConfigError } from "../common/errors.ts";
import { redact } from "../common/redact.ts";
import { closest } from "../common/text.ts";
import {
  envName,
  fileKey,
  formatValue,
  type SettingKey,
  settingKeys,
  type Settings,
  settingsSchema,
} from "./schema.ts";

export type SettingSource = "flag" | "env" | "file" | "default";

export interface ResolveInput {
  /** Values from command-line flags, still as text. Only the flags the user gave. */
  readonly flags: Partial<Record<SettingKey, string>>;
  readonly env: Readonly<Record<string, string | undefined>>;
  readonly cwd: string;
  /** `-c, --config`: must exist when given. Otherwise ./llama3-trt.yaml or ./llama3-trt.json if present. */
  readonly configPath?: string | undefined;
}

export interface Resolved {
  readonly settings: Settings;
  readonly sources: Readonly<Record<SettingKey, SettingSource>>;
  readonly configFile: string | null;
  readonly warnings: readonly string[];
}

export const defaultConfigNames = ["llama3-trt.yaml", "llama3-trt.yml", "llama3-trt.json"] as const;

/**
 * Settings from flags > environment > config file > defaults, validated against the schema and
 * the cross-field rules. Throws one ConfigError listing every problem, so a user fixes them in
 * one go rather than one per run.
 */
export function resolveSettings(input: ResolveInput): Resolved {
  const issues: string[] = [];
  const warnings: string[] = [];
  const configFile = findConfigFile(input, issues);
  const fileValues = configFile ? readConfigFile(configFile, issues) : {};
  const fileDir = configFile ? dirname(configFile) : input.cwd;

  const values: Record<string, unknown> = {};
  const sources = {} as Record<SettingKey, SettingSource>;
  for (const key of settingKeys) {
    const spec = settingsSchema[key];
    const candidates: [SettingSource, unknown, string][] = [
      ["flag", input.flags[key], flagLabel(key)],
      ["env", input.env[envName(key)], envName(key)],
      ["file", fileValues[fileKey(key)], configFile ? `${fileKey(key)} in ${configFile}` : ""],
    ];
    const given = candidates.find(([, raw]) => raw !== undefined);
    if (!given) {
      values[key] = spec.default;
      sources[key] = "default";
      continue;
    }
    const [source, raw, label] = given;
    const parsed = (spec.parse as (raw: unknown) => { ok: boolean; value?: unknown; expected?: string })(raw);
    if (!parsed.ok) {
      // The value as given, less anything secret-shaped in it (a token in a URL).
      // A secret is never echoed, not even a malformed one.
      issues.push(`${label}: expected ${parsed.expected}${key === "apiKey" ? "" : `, got ${redact(JSON.stringify(raw))}`}`);
      continue;
    }
    values[key] = parsed.value;
    sources[key] = source;
  }

  warnUnknownEnv(input.env, warnings);
  if (issues.length > 0) throw new ConfigError(issues);

  // Relative folders mean "relative to where they were written": the config file's folder for
  // values from the file, the current folder for flags, environment and defaults.
  for (const key of ["workdir", "modelDir"] as const) {
    const value = values[key];
    if (typeof value === "string") {
      const absolute = isAbsolute(value) ? value : resolvePath(sources[key] === "file" ? fileDir : input.cwd, value);
      values[key] = realPath(absolute);
    }
  }

  const settings = Object.freeze(values) as Settings;
  issues.push(...checkRules(settings, sources));
  if (issues.length > 0) throw new ConfigError(issues);
  return { settings, sources: Object.freeze(sources), configFile, warnings };
}

function flagLabel(key: SettingKey): string {
  return key === "workdir" ? "--workdir" : `--${fileKey(key).replace(/_/g, "-")}`;
}

function findConfigFile(input: ResolveInput, issues: string[]): string | null {
  if (input.configPath !== undefined) {
    const path = resolvePath(input.cwd, input.configPath);
    if (!existsSync(path)) {
      issues.push(`--config: ${path} does not exist (create it with \`llama3-trt init\`)`);
      return null;
    }
    return path;
  }
  const present = defaultConfigNames.map((name) => resolvePath(input.cwd, name)).filter((p) => existsSync(p));
  if (present.length > 1) {
    issues.push(`both ${present.join(" and ")} exist: keep one, or choose with --config`);
    return null;
  }
  return present[0] ?? null;
}

/** Aliases are YAML's billion-laughs door; no setting needs more than a handful (case 34d). */
const maxAliasCount = 20;

/** Parses the config file (YAML, or JSON as its subset) into `file_key → value`, collecting issues. */
export function readConfigFile(path: string, issues: string[]): Record<string, unknown> {
  let text: string;
  try {
    text = readFileSync(path, "utf8");
  } catch (error) {
    issues.push(`${path}: cannot be read (${(error as NodeJS.ErrnoException).code ?? String(error)})`);
    return {};
  }
  // yaml is loaded only when there is a file to read: most runs have none, and it costs ~30 ms.
  const { isMap, isScalar, LineCounter, parseDocument } = createRequire(import.meta.url)("yaml") as typeof import("yaml");
  const lineCounter = new LineCounter();
  // JSON is parsed by the YAML parser too: it is a subset, and this way a duplicate key in JSON
  // is reported instead of silently keeping the last one (case 34e).
  const doc = parseDocument(text, { lineCounter, uniqueKeys: true, prettyErrors: false, strict: true });
  if (doc.errors.length > 0) {
    for (const error of doc.errors) {
      const at = lineCounter.linePos(error.pos[0]);
      issues.push(`${path}:${at.line}:${at.col}: ${firstLine(error.message)}`);
    }
    return {};
  }
  if (doc.contents === null) return {};
  if (!isMap(doc.contents)) {
    issues.push(`${path}: expected a mapping of settings (key: value), got ${extname(path) === ".json" ? "another JSON value" : "another YAML value"}`);
    return {};
  }

  let plain: Record<string, unknown>;
  try {
    plain = doc.toJS({ maxAliasCount }) as Record<string, unknown>;
  } catch (error) {
    issues.push(`${path}: ${firstLine((error as Error).message)}`);
    return {};
  }

  const known = new Set(settingKeys.map(fileKey));
  const values: Record<string, unknown> = {};
  for (const pair of doc.contents.items) {
    const keyNode = pair.key;
    const name = isScalar(keyNode) ? String(keyNode.value) : String(keyNode);
    const at = isScalar(keyNode) && keyNode.range ? lineCounter.linePos(keyNode.range[0]) : undefined;
    const where = at ? `${path}:${at.line}:${at.col}` : path;
    if (!known.has(name)) {
      const suggestion = closest(name, [...known]);
      issues.push(`${where}: unknown key \`${name}\`${suggestion ? ` (did you mean \`${suggestion}\`?)` : ""}`);
      continue;
    }
    values[name] = plain[name];
  }
  return values;
}

function firstLine(message: string): string {
  return message.split("\n")[0] ?? message;
}

/** A typo in an environment variable name is easy to miss: say so, but do not refuse to run. */
function warnUnknownEnv(env: ResolveInput["env"], warnings: string[]): void {
  const known = settingKeys.map(envName);
  for (const name of Object.keys(env)) {
    if (!name.startsWith("LLAMA3_TRT_") || name.startsWith("LLAMA3_TRT_TEST_") || known.includes(name)) continue;
    const suggestion = closest(name, known);
    if (suggestion) warnings.push(`ignoring ${name} (did you mean ${suggestion}?)`);
  }
}

/** Cross-field rules: small, named, each with a message that says what to change. */
function checkRules(s: Settings, sources: Readonly<Record<SettingKey, SettingSource>>): string[] {
  const issues: string[] = [];
  const ports = { port: s.port, grpc_port: s.grpcPort, metrics_port: s.metricsPort, ...(s.openaiPort === 0 ? {} : { openai_port: s.openaiPort }) };
  const seen = new Map<number, string>();
  for (const [name, value] of Object.entries(ports)) {
    const other = seen.get(value);
    if (other) issues.push(`${name} and ${other} are both ${value}: each server port needs its own number`);
    seen.set(value, name);
  }
  if (s.modelDir !== null && sources.revision !== "default") {
    issues.push(`--model-dir and --revision (${s.revision}) together make no sense: local weights have no Hub revision`);
  }
  if (Array.isArray(s.gpus) && s.gpus.length < s.tp) {
    issues.push(`--tp ${s.tp} needs ${s.tp} GPUs but --gpus lists ${s.gpus.length} (${formatValue(s.gpus)})`);
  }
  // The context (input + output against max_position_embeddings) and tp against the heads are
  // the model's limits, checked against its own config.json before any download (model/limits.ts).
  return issues;
}

/**
 * The path with symbolic links resolved, once, here: what the tool prints, labels containers
 * with and mounts is the real folder (reliability case 40b). Parts that do not exist yet are kept.
 */
function realPath(path: string): string {
  const rest: string[] = [];
  let existing = path;
  while (!existsSync(existing)) {
    const parent = dirname(existing);
    if (parent === existing) return path;
    rest.unshift(basename(existing));
    existing = parent;
  }
  return join(realpathSync(existing), ...rest);
}
