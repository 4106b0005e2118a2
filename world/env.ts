/**
 * Prints the product's environment for the running world as NAME=value lines, so that
 *   env $(node world/env.ts) llama3-trt build
 * runs the product against the world from any shell. The values hold no spaces (URLs, image
 * references, a token), which that word-splitting relies on.
 */
import { worldConfig } from "./paths.ts";
import { readEnvFile } from "./state.ts";

const config = worldConfig();
const file = await readEnvFile(config);
if (!file) {
  process.stderr.write(`no ${config.files.envJson}: run \`npm run world:up\` first\n`);
  process.exitCode = 1;
} else {
  for (const [name, value] of Object.entries(file.env)) process.stdout.write(`${name}=${value}\n`);
}
