/**
 * CLI entry of the world server:
 *
 *   node world/server/main.ts --state-dir D [--hub-port 5056] [--cdn-port 5057]
 *     [--recorder-host 172.17.0.1] [--recorder-port 5058] [--host 127.0.0.1] [--bytes-per-shard N]
 *
 * Ports default to $WORLD_HUB_PORT / $WORLD_CDN_PORT / $WORLD_RECORDER_PORT, then to the values
 * above. Once listening it prints one JSON line `{"ready":true,"pid",...,"hubUrl","cdnUrl",
 * "recorderUrl"}` and writes the same to `<stateDir>/server.json` (removed again on a clean
 * SIGTERM/SIGINT shutdown). On a start failure it prints `{"ready":false,"error"}` and exits 1.
 */
import { rename, rm, writeFile, readFile } from "node:fs/promises";
import { join, resolve } from "node:path";
import { parseArgs } from "node:util";
import { startWorldServer } from "./index.ts";

function port(flag: string | undefined, env: string | undefined, fallback: number, name: string): number {
  const text = flag ?? env ?? String(fallback);
  const value = Number(text);
  if (!Number.isInteger(value) || value < 0 || value > 65535) throw new Error(`--${name}: not a port: ${text}`);
  return value;
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      "state-dir": { type: "string" },
      "hub-port": { type: "string" },
      "cdn-port": { type: "string" },
      "recorder-host": { type: "string" },
      "recorder-port": { type: "string" },
      host: { type: "string" },
      "bytes-per-shard": { type: "string" },
    },
    strict: true,
  });
  const stateDirFlag = values["state-dir"];
  if (!stateDirFlag) throw new Error("--state-dir is required");
  const stateDir = resolve(stateDirFlag);
  const bytesPerShard = values["bytes-per-shard"] === undefined ? undefined : Number(values["bytes-per-shard"]);
  if (bytesPerShard !== undefined && !(Number.isInteger(bytesPerShard) && bytesPerShard > 0)) {
    throw new Error(`--bytes-per-shard: not a positive integer: ${values["bytes-per-shard"]}`);
  }

  const server = await startWorldServer({
    stateDir,
    hubPort: port(values["hub-port"], process.env.WORLD_HUB_PORT, 5056, "hub-port"),
    cdnPort: port(values["cdn-port"], process.env.WORLD_CDN_PORT, 5057, "cdn-port"),
    recorderHost: values["recorder-host"] ?? "172.17.0.1",
    recorderPort: port(values["recorder-port"], process.env.WORLD_RECORDER_PORT, 5058, "recorder-port"),
    host: values.host,
    bytesPerShard,
  });

  const ready = { ready: true, pid: process.pid, hubUrl: server.hubUrl, cdnUrl: server.cdnUrl, recorderUrl: server.recorderUrl };
  const infoFile = join(stateDir, "server.json");
  // Written atomically: a reader never sees half a file.
  const tmp = `${infoFile}.${process.pid}.tmp`;
  await writeFile(tmp, JSON.stringify(ready) + "\n");
  await rename(tmp, infoFile);
  process.stdout.write(JSON.stringify(ready) + "\n");

  let stopping = false;
  const stop = async (signal: NodeJS.Signals) => {
    if (stopping) return;
    stopping = true;
    await server.close();
    // Only our own file: a newer server may have replaced it.
    const current = await readFile(infoFile, "utf8").catch(() => "");
    if (current.includes(`"pid":${process.pid},`)) await rm(infoFile, { force: true });
    process.stderr.write(`world server: stopped on ${signal}\n`);
    process.exit(0);
  };
  process.on("SIGTERM", (signal) => void stop(signal));
  process.on("SIGINT", (signal) => void stop(signal));
}

main().catch((error: unknown) => {
  const message = error instanceof Error ? error.message : String(error);
  process.stdout.write(JSON.stringify({ ready: false, error: message }) + "\n");
  process.stderr.write(`world server: ${message}\n`);
  process.exit(1);
});
