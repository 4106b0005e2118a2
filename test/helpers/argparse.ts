import { readFileSync } from "node:fs";

/** One argparse action as recorded in test/fixtures/trtllm-v0.8.0-flags.json. */
interface Action {
  readonly option_strings: readonly string[];
  readonly dest: string;
  readonly action: string;
  readonly type: string | null;
  readonly choices: readonly (string | number)[] | null;
  readonly nargs: number | string | null;
  readonly required: boolean;
}

interface ToolSpec {
  readonly argparse: readonly Action[];
}

const fixture = JSON.parse(readFileSync(new URL("../fixtures/trtllm-v0.8.0-flags.json", import.meta.url), "utf8")) as {
  tools: Record<string, ToolSpec>;
};

export function toolSpec(tool: string): ToolSpec {
  const spec = fixture.tools[tool];
  if (!spec) throw new Error(`no flag spec for ${tool}`);
  return spec;
}

/**
 * Parses argv the way Python's argparse would for the recorded v0.8.0 parser, without
 * abbreviations (the product must never rely on them). Returns dest → values, or throws with
 * the error argparse would print.
 */
export function parseLikeArgparse(tool: string, argv: readonly string[]): Map<string, string[] | true> {
  const actions = toolSpec(tool).argparse;
  const parsed = new Map<string, string[] | true>();
  for (let i = 0; i < argv.length; i++) {
    const token = argv[i] as string;
    const [flag, inline] = token.startsWith("--") && token.includes("=") ? token.split(/=(.*)/s, 2) : [token, undefined];
    const action = actions.find((a) => a.option_strings.includes(flag as string));
    if (!action) throw new Error(`unrecognized arguments: ${token}`);
    if (action.action === "store_true" || action.action === "store_false") {
      parsed.set(action.dest, true);
      continue;
    }
    const values: string[] = [];
    if (inline !== undefined) values.push(inline);
    else {
      const many = action.nargs === "+" || action.nargs === "*";
      while (i + 1 < argv.length && !(argv[i + 1] as string).startsWith("--")) {
        values.push(argv[++i] as string);
        if (!many) break;
      }
    }
    if (values.length === 0 && action.nargs !== "?" && action.nargs !== "*") throw new Error(`argument ${flag}: expected one argument`);
    for (const value of values) {
      if (action.type === "int" && !/^-?\d+$/.test(value)) throw new Error(`argument ${flag}: invalid int value: '${value}'`);
      if (action.type === "float" && Number.isNaN(Number(value))) throw new Error(`argument ${flag}: invalid float value: '${value}'`);
      if (action.choices && !action.choices.map(String).includes(value)) {
        throw new Error(`argument ${flag}: invalid choice: '${value}'`);
      }
    }
    parsed.set(action.dest, values);
  }
  for (const action of actions) {
    if (action.required && !parsed.has(action.dest)) throw new Error(`the following arguments are required: ${action.option_strings.join("/")}`);
  }
  return parsed;
}
