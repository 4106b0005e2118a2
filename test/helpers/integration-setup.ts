/**
 * setupFiles of the integration project: around every test,
 * - the Docker engine must answer before it starts, and is watched while it runs (a test whose
 *   engine goes away fails within seconds, saying so: ./engine-watch.ts);
 * - no container of the product (`dev.llama3-trt`) or of a test helper (`dev.llama3-trt.test`)
 *   may exist before it starts or be left after it ends (testcontainers' leak check). Leftovers
 *   fail the test that left them and are then removed, so the next test starts clean.
 */
import { afterEach, beforeEach } from "vitest";
import { containersWithLabel, TEST_CONTAINER_LABEL, type ContainerSummary, docker } from "./docker.ts";
import { dockerHost, type EngineWatch, ping, setCurrentWatch, watchEngine } from "./engine-watch.ts";
import { killRunningClis } from "./cli.ts";

const PRODUCT_LABEL = "dev.llama3-trt";

async function withTimeout<T>(what: string, promise: Promise<T>, ms = 15_000): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what}: the Docker engine at ${dockerHost()} did not answer within ${ms / 1000} s`)), ms);
  });
  try {
    return await Promise.race([promise, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

async function leftovers(): Promise<ContainerSummary[]> {
  const lists = await withTimeout("listing containers", Promise.all([containersWithLabel(PRODUCT_LABEL), containersWithLabel(TEST_CONTAINER_LABEL)]));
  const byId = new Map(lists.flat().map((c) => [c.id, c]));
  return [...byId.values()];
}

function describe(containers: readonly ContainerSummary[]): string {
  return containers.map((c) => `${c.name} (${c.labels["dev.llama3-trt.role"] ?? "test"}, ${c.state})`).join(", ");
}

async function removeAll(containers: readonly ContainerSummary[]): Promise<void> {
  await Promise.all(containers.map((c) => docker().getContainer(c.id).remove({ force: true, v: true }).catch(() => {})));
}

let watch: EngineWatch | undefined;

beforeEach(async () => {
  if (!(await ping(dockerHost(), 3_000))) {
    throw new Error(`The Docker engine at ${dockerHost()} does not answer: the test world is down. \`npm run world:up\` starts it.`);
  }
  const left = await leftovers();
  if (left.length > 0) {
    await removeAll(left);
    throw new Error(`${left.length} container(s) existed before this test started (left by an earlier test or another process; now removed): ${describe(left)}`);
  }
  watch = watchEngine({ host: dockerHost(), onGone: () => killRunningClis() });
  setCurrentWatch(watch);
});

afterEach(async () => {
  const ended = watch;
  ended?.stop();
  setCurrentWatch(undefined);
  watch = undefined;
  if (ended?.gone) throw ended.gone;
  const left = await leftovers();
  if (left.length > 0) {
    await removeAll(left);
    throw new Error(`this test left ${left.length} container(s) behind (now removed): ${describe(left)}`);
  }
});
