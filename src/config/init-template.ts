import { stringify } from "yaml";
import {
  envName,
  fileKey,
  flagName,
  formatValue,
  type SettingGroup,
  type SettingKey,
  settingKeys,
  settingsSchema,
} from "./schema.ts";

const groupTitles: Record<SettingGroup, string> = {
  build: "Build: the model and the engine (`build`, `plan`)",
  sources: "Sources: git repositories (mirrors and air-gapped sites)",
  images: "Images: container images (mirrors and air-gapped sites)",
  serve: "Serve: Triton's ports on the host (`serve`, `ask`)",
  workdir: "Workdir",
};

const groupOrder: readonly SettingGroup[] = ["build", "sources", "images", "serve", "workdir"];

function keysOf(group: SettingGroup): SettingKey[] {
  return settingKeys.filter((key) => settingsSchema[key].group === group);
}

/** How a user sets it besides the file: `--dtype, LLAMA3_TRT_DTYPE`. */
function otherForms(key: SettingKey): string {
  const flag = key === "workdir" ? "-w, --workdir" : settingsSchema[key].flag ? flagName(key) : undefined;
  return [flag, envName(key)].filter(Boolean).join(", ");
}

/** The commented `llama3-trt.yaml` that `init` writes: every setting with its default. */
export function renderConfigFile(): string {
  const lines = [
    "# llama3-trt settings. Every key is shown with its default: change what you need, delete the rest.",
    "# Precedence: command-line flags > LLAMA3_TRT_* environment variables > this file > defaults.",
    "# Secrets do not belong here: the Hugging Face token comes from HF_TOKEN or `huggingface-cli login`.",
  ];
  for (const group of groupOrder) {
    lines.push("", `# ${groupTitles[group]}`);
    for (const key of keysOf(group)) {
      const spec = settingsSchema[key];
      lines.push(`# ${spec.description} (${otherForms(key)})`);
      const value = Array.isArray(spec.default) ? formatValue(spec.default) : spec.default;
      lines.push(stringify({ [fileKey(key)]: value }).trimEnd());
    }
  }
  return `${lines.join("\n")}\n`;
}

/** The README's settings table, generated so that it cannot drift from the schema. */
export function renderSettingsTable(): string {
  const rows = ["| key (file) | flag | environment | default | what |", "|---|---|---|---|---|"];
  for (const group of groupOrder) {
    for (const key of keysOf(group)) {
      const spec = settingsSchema[key];
      const flag = key === "workdir" ? "`-w, --workdir`" : spec.flag ? `\`${flagName(key)}\`` : "";
      const defaultText = spec.default === null ? "" : `\`${formatValue(spec.default)}\``;
      rows.push(`| \`${fileKey(key)}\` | ${flag} | \`${envName(key)}\` | ${defaultText} | ${spec.description} |`);
    }
  }
  return rows.join("\n");
}
