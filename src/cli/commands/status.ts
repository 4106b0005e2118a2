import { labelKeys } from "../../docker/labels.ts";
import { isAlive, readOwner } from "../../pipeline/lock.ts";
import { isOrphan } from "../../pipeline/orphans.ts";
import { Session } from "../../pipeline/session.ts";
import { type ContainerSummary, EngineUnreachableError } from "../../docker/docker-client.ts";
import { containerUrls } from "../../server/urls.ts";
import { describeGateway } from "../../server/gateway.ts";
import { httpReadyProbe } from "../../triton/wait.ts";
import { version } from "../version.ts";
import { type CommandEnv, settingsFor } from "./command.ts";

/** Steps, the workdir's lock and its containers, in one view. Reads only: takes no lock. */
export async function run(env: CommandEnv): Promise<void> {
  const { settings } = settingsFor(env);
  const session = new Session({ settings, env: env.env, signal: new AbortController().signal, toolVersion: version, hubWarnings: (message) => env.output.warn(message) });
  const lock = await readOwner(session.paths.lockDir);
  const steps = await (await session.pipeline()).evaluate();
  let containers: ContainerSummary[] = [];
  let engineProblem: string | undefined;
  try {
    containers = await session.docker.listContainers({ [labelKeys.workdir]: session.paths.id });
  } catch (error) {
    if (!(error instanceof EngineUnreachableError)) throw error;
    engineProblem = `unknown: Docker not reachable at ${error.host} (${error.code})`;
  }
  const server = await describeServer(containers.find((c) => c.labels[labelKeys.role] === "server"));
  const gateway = await describeGateway(session);
  const orphans = containers
    .filter((c) => isOrphan(c))
    .map((c) => ({ name: c.name, state: c.state, step: c.labels[labelKeys.role], run: c.labels[labelKeys.run] }));

  if (env.output.json) {
    env.output.document({
      workdir: session.paths.root,
      lock: lock ? { ...lock, alive: isAlive(lock.pid) } : null,
      steps: steps.map((s) => ({ id: s.id, state: s.state, reason: s.reason })),
      server: engineProblem ? { state: engineProblem } : server,
      gateway,
      orphans,
    });
    return;
  }
  const lines = [`Workdir ${session.paths.root}`];
  if (lock) lines.push(`  locked by pid ${lock.pid} on ${lock.host} (${lock.command} since ${lock.startedAt})${isAlive(lock.pid) ? "" : ", which is gone: the next build takes over"}`);
  const width = Math.max(...steps.map((s) => s.id.length));
  for (const s of steps) lines.push(`  ${s.id.padEnd(width)}  ${s.state}${s.state === "done" ? "" : `  ${s.reason}`}`);
  if (engineProblem) lines.push(`Server: ${engineProblem}`);
  else if (!server) lines.push("Server: not running");
  else {
    lines.push(`Server: ${server.container} (${server.state}${server.state === "running" ? (server.ready ? ", ready" : ", not ready yet") : ""})${server.urls ? ` at ${server.urls.http}` : ""}`);
    if (server.exposed) lines.push("  published on 0.0.0.0: reachable from other machines (Docker's published ports bypass host firewalls such as ufw)");
  }
  lines.push(gateway.state === "running" ? `OpenAI gateway: pid ${gateway.pid} (${gateway.ready ? "ready" : "not ready: Triton behind it is not"}) at ${gateway.url}` : "OpenAI gateway: not running");
  for (const o of orphans) lines.push(`Orphaned container ${o.name} (${o.state}) from run ${o.run?.slice(0, 8)} (${o.step}); the next \`build\`, \`stop\` or \`clean\` removes it`);
  env.output.result(lines.join("\n"));
}

/** The server container as `status` shows it: its state, where it is published, and whether it is ready. */
async function describeServer(container: ContainerSummary | undefined) {
  if (!container) return null;
  const urls = containerUrls(container) ?? null;
  const ready = container.state === "running" && urls ? (await httpReadyProbe(urls.http, 1_000)()).ok : false;
  return {
    container: container.name,
    state: container.state,
    ready,
    urls,
    bindings: container.ports.map((p) => `${p.hostIp}:${p.host}->${p.container}`),
    exposed: container.ports.some((p) => p.hostIp === "0.0.0.0" || p.hostIp === "" || p.hostIp === "::"),
  };
}
