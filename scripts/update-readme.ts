// Regenerates the settings table in README.md from the schema (npm run readme).
// A test fails when the README and the schema disagree, so this is the only way to edit it.
import { readFileSync, writeFileSync } from "node:fs";
import { renderSettingsTable } from "../src/config/init-template.ts";

const path = new URL("../README.md", import.meta.url);
const readme = readFileSync(path, "utf8");
const pattern = /(<!-- settings:start -->\n)[\s\S]*?(<!-- settings:end -->)/;
if (!pattern.test(readme)) throw new Error("README.md has no <!-- settings:start --> … <!-- settings:end --> block");
writeFileSync(path, readme.replace(pattern, `$1${renderSettingsTable()}\n$2`));
