import { randomUUID } from "node:crypto";
import { hostname } from "node:os";
import type { Settings } from "../config/schema.ts";
import { type DockerClient, type EngineInfo, EngineUnreachableError } from "../docker/docker-client.ts";
import { checkedDockerHost, DockerodeClient } from "../docker/dockerode-client.ts";
import { labelKeys, ownerLabels } from "../docker/labels.ts";
import type { GitClient } from "../git/git-client.ts";
import { SimpleGitClient } from "../git/simple-git-client.ts";
import { type Hub, HubClient } from "../hub/hub-client.ts";
import { checkedEndpoint, readHubEnv } from "../hub/hub-env.ts";
import { acquireLock, type WorkdirLock } from "./lock.ts";
import type { Assessment } from "../model/assessment.ts";
import { modelAssessment } from "./model-check.ts";
import { isOrphan } from "./orphans.ts";
import { Pipeline, type BaseContext } from "./runner.ts";
import { StateStore } from "./state.ts";
import type { Json } from "./fingerprint.ts";
import type { Clients } from "./step.ts";
import type { StepId } from "./step-ids.ts";
import { allSteps } from "./steps/index.ts";
import { WorkdirPaths } from "./workdir.ts";
import { sweepTempFiles } from "../common/atomic-file.ts";

export interface SessionOptions {
  readonly settings: Settings;
  readonly env: Readonly<Record<string, string | undefined>>;
  readonly signal: AbortSignal;
  readonly toolVersion: string;
  readonly clients?: Clients;
  /** `build --verify`: checks that read every byte (weights against their hashes). */
  readonly deepVerify?: boolean;
  /**
   * Where the Hub client's retries are said when no step's log takes them (the listing and the
   * model check's small files, before the download): a wait of up to half a minute is not silent.
   */
  readonly hubWarnings?: (message: string) => void;
}

/**
 * Everything one command invocation needs to judge or run the pipeline: the composition root.
 * The clients are made here, each on first use, from the one environment the CLI was given, and
 * the Hugging Face environment (token, endpoint, cache, offline) is resolved once: a command
 * that never talks to the Hub never reads the token.
 */
export class Session {
  readonly paths: WorkdirPaths;
  readonly runId = randomUUID();
  readonly clients: Clients;
  readonly settings: Settings;
  readonly #options: SessionOptions;
  #engine: Promise<EngineInfo> | undefined;
  #state: Promise<StateStore> | undefined;
  readonly #memo = new Map<string, Promise<unknown>>();

  constructor(options: SessionOptions) {
    this.#options = options;
    this.settings = options.settings;
    this.paths = new WorkdirPaths(options.settings.workdir);
    // What is wrong with the environment is said before anything starts (exit 2), not when a
    // client is first used half-way through: the two addresses are checked now; the token,
    // a secret, is read only by a command that talks to the Hub.
    checkedDockerHost(options.env.DOCKER_HOST);
    checkedEndpoint(options.env.HF_ENDPOINT);
    this.clients = options.clients ?? lazyClients(options.env, options.signal, options.hubWarnings);
  }

  /** HF_ENDPOINT when the environment sets one (a mirror): no secret, and the export's Job must use it too. */
  hubEndpoint(): string | undefined {
    const value = this.#options.env.HF_ENDPOINT;
    return value === undefined || value === "" ? undefined : checkedEndpoint(value);
  }

  get docker(): DockerClient {
    return this.clients.docker;
  }

  engine(): Promise<EngineInfo> {
    this.#engine ??= this.clients.docker.info();
    return this.#engine;
  }

  labelsFor(role: string): Record<string, string> {
    return ownerLabels({ workdirId: this.paths.id, runId: this.runId, role, pid: process.pid, host: hostname() });
  }

  /** The model judged against the settings and the GPUs (see pipeline/model-check.ts). */
  modelAssessment(how: { probe: boolean }): Promise<Assessment> {
    return modelAssessment(this.#base(), how);
  }

  async pipeline(): Promise<Pipeline> {
    return new Pipeline(allSteps, await this.#records(), this.#base(), this.#options.toolVersion);
  }

  /** The workdir's records, read once per command (the pipeline then keeps them current). */
  #records(): Promise<StateStore> {
    this.#state ??= StateStore.load(this.paths);
    return this.#state;
  }

  /** One context for every step and check of this command: the memo is shared, so each file is fetched once. */
  #base(): BaseContext {
    return {
      settings: this.settings,
      paths: this.paths,
      clients: this.clients,
      env: this.#options.env,
      signal: this.#options.signal,
      runId: this.runId,
      labelsFor: (role) => this.labelsFor(role),
      engine: () => this.engine(),
      deepVerify: this.#options.deepVerify ?? false,
      recorded: async <T extends Json>(id: StepId) => (await this.#records()).get(id)?.out as T | undefined,
      memo: <T>(key: string, compute: () => Promise<T>) => {
        let value = this.#memo.get(key) as Promise<T> | undefined;
        if (!value) {
          value = compute();
          this.#memo.set(key, value);
        }
        return value;
      },
    };
  }

  /** Takes the workdir for writing, then clears what a killed run may have left behind. */
  async lock(command: string): Promise<WorkdirLock> {
    const lock = await acquireLock(this.paths.lockDir, {
      pid: process.pid,
      host: hostname(),
      command,
      startedAt: new Date().toISOString(),
      runId: this.runId,
    });
    await sweepTempFiles(this.paths.root);
    return lock;
  }

  /**
   * Removes this workdir's orphans, containers whose owning process is dead (see isOrphan), and
   * says what it removed through `onReaped`.
   */
  async reapOrphans(onReaped: (message: string) => void): Promise<void> {
    let containers;
    try {
      containers = await this.clients.docker.listContainers({ [labelKeys.workdir]: this.paths.id });
    } catch (error) {
      // No engine, no containers to reap; a step that needs the engine says so in its own check.
      if (error instanceof EngineUnreachableError) return;
      throw error;
    }
    for (const c of containers) {
      if (!isOrphan(c)) continue;
      await this.clients.docker.removeContainer(c.id, { kill: true });
      const run = (c.labels[labelKeys.run] ?? "?").slice(0, 8);
      onReaped(`removed container ${c.name} left running by a killed run ${run} (${c.labels[labelKeys.role] ?? "?"})`);
    }
  }

  /** Double Ctrl-C: kill and remove every container of this run at once. */
  async killRunContainers(): Promise<void> {
    const containers = await this.clients.docker.listContainers({ [labelKeys.run]: this.runId });
    await Promise.all(containers.map((c) => this.clients.docker.removeContainer(c.id, { kill: true })));
  }
}

/** Docker, git and the Hub, each made when first used (a `status` needs no Hub, a remote `ask` none of them). */
function lazyClients(env: Readonly<Record<string, string | undefined>>, signal: AbortSignal, hubWarnings?: (message: string) => void): Clients {
  let docker: DockerClient | undefined;
  let git: GitClient | undefined;
  let hub: Hub | undefined;
  return {
    get docker() {
      docker ??= new DockerodeClient(env);
      return docker;
    },
    get git() {
      git ??= new SimpleGitClient(env);
      return git;
    },
    get hub() {
      hub ??= new HubClient(readHubEnv(env), signal, hubWarnings);
      return hub;
    },
  };
}
