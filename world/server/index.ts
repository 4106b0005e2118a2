/**
 * The world server: the Hub API, the CDN origin and the invocation recorder, in one process.
 * Tests start it in-process on ephemeral ports (`0`); `world:up` runs `main.ts` on fixed ones.
 */
import { mkdir } from "node:fs/promises";
import { join } from "node:path";
import { CdnSigner, createCdnServer } from "./cdn.ts";
import { closeServer, listen } from "./http-util.ts";
import { createHubServer } from "./hub.ts";
import { createRecorderServer } from "./recorder.ts";
import { materialiseWorldRepos, type RepoStore } from "./repo-fixture.ts";
import { RequestLog } from "./request-log.ts";
import { ScenarioState } from "./scenario.ts";
import type { Server } from "node:http";

export { DENIED_TOKEN, GRANTED_TOKEN, SENTINEL_TOKEN, tokenClass } from "./tokens.ts";
export { GATED_REPO_ID, LLAMA31_REPO_ID, OPEN_REPO_ID, WORLD_REPOS, readRepoManifest } from "./repo-fixture.ts";
export type { RepoManifest, RepoCommit, RepoFile } from "./repo-fixture.ts";
export type { Scenario, FaultRule, ExtraEntry } from "./scenario.ts";
export type { RequestLogEntry } from "./request-log.ts";
export type { Invocation } from "./recorder.ts";

export interface WorldServerOptions {
  /** Holds `repos/`, `hub-requests.jsonl`, `invocations.jsonl`. */
  readonly stateDir: string;
  readonly hubPort: number;
  readonly cdnPort: number;
  /** The docker bridge gateway in the real world, so containers can reach it; 127.0.0.1 in tests. */
  readonly recorderHost: string;
  readonly recorderPort: number;
  /** Where the Hub and the CDN listen. */
  readonly host?: string;
  /** Target size of each safetensors shard (benchmarks); default: tiny (~1 MB). */
  readonly bytesPerShard?: number;
  /** Tree entries per page; default 5, so a repo listing takes several pages. */
  readonly pageSize?: number;
}

export interface WorldServer {
  readonly hubUrl: string;
  readonly cdnUrl: string;
  readonly recorderUrl: string;
  readonly requestLog: string;
  readonly invocationsLog: string;
  readonly store: RepoStore;
  readonly scenario: ScenarioState;
  close(): Promise<void>;
}

/** `http://host:port`, with brackets for an IPv6 literal. */
function url(host: string, port: number): string {
  return `http://${host.includes(":") ? `[${host}]` : host}:${port}`;
}

export async function startWorldServer(options: WorldServerOptions): Promise<WorldServer> {
  const host = options.host ?? "127.0.0.1";
  await mkdir(options.stateDir, { recursive: true });
  const store = await materialiseWorldRepos(options.stateDir, { bytesPerShard: options.bytesPerShard });
  const requestLog = join(options.stateDir, "hub-requests.jsonl");
  const invocationsLog = join(options.stateDir, "invocations.jsonl");
  const log = new RequestLog(requestLog);
  const scenario = new ScenarioState();
  const signer = new CdnSigner();

  const started: Server[] = [];
  const closeAll = () => Promise.all(started.map(closeServer)).then(() => undefined);
  try {
    // The CDN first: the Hub's redirects need its (possibly ephemeral) port.
    const cdn = createCdnServer({ store, scenario, signer, log });
    started.push(cdn);
    const cdnUrl = url(host, await listen(cdn, options.cdnPort, host));

    const hub = createHubServer({ store, scenario, signer, log, cdnUrl, pageSize: options.pageSize ?? 5 });
    started.push(hub);
    const hubUrl = url(host, await listen(hub, options.hubPort, host));

    const recorder = createRecorderServer(invocationsLog, log);
    started.push(recorder);
    const recorderUrl = url(options.recorderHost, await listen(recorder, options.recorderPort, options.recorderHost));

    return { hubUrl, cdnUrl, recorderUrl, requestLog, invocationsLog, store, scenario, close: closeAll };
  } catch (error) {
    await closeAll();
    throw error;
  }
}
