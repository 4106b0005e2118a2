/**
 * The Hub client against the world's Hub stand-in, in-process: the listing, the distinct
 * messages of 401/403/404 (cases 10-12), retries of 429/5xx/unreachable with the real schedule
 * (case 13, recorded instead of slept), and the token's lane (case 37).
 */
import { createServer } from "node:net";
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from "vitest";
import { FailedError, InterruptedError } from "../../src/common/errors.ts";
import { HubClient, type RepoFile } from "../../src/hub/hub-client.ts";
import { HubError } from "../../src/hub/hub-errors.ts";
import {
  DENIED_TOKEN,
  GATED_REPO_ID,
  GRANTED_TOKEN,
  type HubWorld,
  newRun,
  OPEN_REPO_ID,
  recordingSleep,
  startHubWorld,
  tempCache,
  worldEnv,
  worldListing,
  endRuns,
  testSignal,
} from "./hub-world.ts";

// Each test takes well under a second: one that hangs has failed (and fails fast under Stryker).
vi.setConfig({ testTimeout: 5_000 });

let world: HubWorld;
beforeAll(async () => {
  world = await startHubWorld();
});
afterAll(() => world?.close());
afterEach(() => {
  endRuns();
  world.resetScenario();
});

function client(token: string | null = GRANTED_TOKEN, extra: Record<string, string> = {}) {
  using cache = tempCache();
  const sleep = recordingSleep();
  const warnings: string[] = [];
  const hub = worldEnv(world, cache.path, token, extra);
  return { client: new HubClient(hub, testSignal(), (m) => warnings.push(m), sleep.sleep), waits: sleep.waits, warnings, hub };
}

async function failure(promise: Promise<unknown>): Promise<Error> {
  return promise.then(
    () => {
      throw new Error("expected a failure");
    },
    (error: unknown) => error as Error,
  );
}

const manifest = (repo = OPEN_REPO_ID) => world.server.store.repo(repo)?.manifest as NonNullable<ReturnType<WorldHub["repo"]>>["manifest"];
type WorldHub = HubWorld["server"]["store"];

describe("whose token was refused (case 11)", () => {
  it("a refusal asks whoami and names the account; any other failure does not ask", async () => {
    const mark = await world.mark();
    const denied = await failure(client(DENIED_TOKEN).client.checkAccess(GATED_REPO_ID));
    expect(denied.message).toContain("(from HF_TOKEN, user `world-denied`) has no access to");
    const missing = await failure(client(GRANTED_TOKEN).client.checkAccess("world/no-such-repo"));
    expect(missing.message).not.toContain("user `");
    const anonymous = await failure(client(null).client.checkAccess(GATED_REPO_ID));
    expect(anonymous.message).toContain("no Hugging Face token was found");
    expect((await world.requestsSince(mark)).map((r) => r.path)).toEqual([
      `/api/models/${GATED_REPO_ID}/auth-check`,
      "/api/whoami-v2",
      "/api/models/world/no-such-repo/auth-check",
      `/api/models/${GATED_REPO_ID}/auth-check`,
    ]);
  });
});

describe("metadata", () => {
  it("resolves main to its 40-hex commit, asking for the revision percent-encoded", async () => {
    const { client: c } = client();
    const mark = await world.mark();
    expect(await c.resolveCommit(OPEN_REPO_ID, "main")).toBe(manifest().commits[0].sha);
    const error = await failure(c.resolveCommit(OPEN_REPO_ID, "no such/branch"));
    expect(error.message).toMatch(/^Revision `no such\/branch` not found in world\/tiny-llama3\. Check --revision\. \(request id Root=1-[0-9a-f-]+\)$/);
    expect((await world.requestsSince(mark)).map((r) => r.path)).toEqual([
      `/api/models/${OPEN_REPO_ID}/revision/main`,
      `/api/models/${OPEN_REPO_ID}/revision/no%20such%2Fbranch`,
    ]);
  });

  it("refuses a commit that is not 40 hex", async () => {
    for (const sha of ["../x", "A".repeat(40), "a".repeat(39), `../${"a".repeat(40)}`, `${"a".repeat(40)}/..`]) {
      await world.setScenario({ commitSha: sha });
      await expect(client().client.resolveCommit(OPEN_REPO_ID, "main")).rejects.toThrow(
        `The Hub gave an invalid commit for ${OPEN_REPO_ID}@main: ${JSON.stringify(sha)}`,
      );
    }
  });

  it("lists every file over several pages: LFS files by sha256 and real size, others by git sha1", async () => {
    const { client: c } = client();
    const commit = manifest().commits[0];
    const mark = await world.mark();
    const files = await c.listFiles(OPEN_REPO_ID, commit.sha);
    expect([...files].sort((a, b) => (a.path < b.path ? -1 : 1))).toEqual(worldListing(world).files);
    // 16 files and a folder at 5 per page: the product followed every Link to the next page.
    const pages = (await world.requestsSince(mark)).filter((r) => r.path.includes("/tree/"));
    expect(pages).toHaveLength(4);
    expect(pages.every((r) => r.authorization && r.status === 200)).toBe(true);
  });

  it("an LFS entry's size is the file's, not its pointer's; an entry without an oid is refused", async () => {
    const commit = manifest().commits[0].sha;
    await world.setScenario({ extraEntries: [{ path: "big.bin", size: 134, lfs: { oid: "f".repeat(64), size: 10_000 } }] });
    expect((await client().client.listFiles(OPEN_REPO_ID, commit)).find((f) => f.path === "big.bin")).toEqual({
      path: "big.bin",
      size: 10_000,
      oid: "f".repeat(64),
      lfs: true,
    });
    await world.setScenario({ extraEntries: [{ path: "no-oid.txt", content: "x", oid: "" }] });
    await expect(client().client.listFiles(OPEN_REPO_ID, commit)).rejects.toThrow(`The Hub listed no-oid.txt in ${OPEN_REPO_ID} without an oid`);
  });

  it("whoami names the token's user", async () => {
    expect(await client().client.whoami()).toMatchObject({ name: "world-user" });
    expect(await client(DENIED_TOKEN).client.whoami()).toMatchObject({ name: "world-denied" });
  });
});

describe("the token's lane and the distinct errors (cases 10-12, 37)", () => {
  it("a granted token passes auth-check and downloads; Authorization reaches the Hub only, never the CDN", async () => {
    const { client: c } = client();
    const mark = await world.mark();
    await c.checkAccess(GATED_REPO_ID);
    const commit = manifest(GATED_REPO_ID).commits[0].sha;
    const answer = await c.request(`${world.server.hubUrl}/${GATED_REPO_ID}/resolve/${commit}/tokenizer.json`, { repo: GATED_REPO_ID });
    expect(Buffer.from(await answer.text(), "utf8").equals(world.bytesOf("tokenizer.json", GATED_REPO_ID))).toBe(true);
    const requests = await world.requestsSince(mark);
    expect(requests.map((r) => [r.origin, r.status, r.authorization])).toEqual([
      ["hub", 200, true],
      ["hub", 302, true],
      ["cdn", 200, false],
    ]);
  });

  it("no token: a public repo works, a gated one says where a token was looked for and how to get access", async () => {
    const { client: c, hub } = client(null);
    await c.checkAccess(OPEN_REPO_ID);
    const error = await failure(c.checkAccess(GATED_REPO_ID));
    expect(error).toBeInstanceOf(HubError);
    expect(error.message).toBe(
      `${GATED_REPO_ID} is gated and no Hugging Face token was found (looked in HF_TOKEN, HUGGING_FACE_HUB_TOKEN, ${hub.tokenLookup[2]}). ` +
        `Request access at ${world.server.hubUrl}/${GATED_REPO_ID}, then run \`huggingface-cli login\` or \`export HF_TOKEN=hf_…\`.`,
    );
  });

  it("a token without access, a rejected token, a missing repo, a missing file: four messages", async () => {
    // Listing says whose repo it could not list, like every request.
    const listingDenied = await failure(client(DENIED_TOKEN).client.listFiles(GATED_REPO_ID, manifest(GATED_REPO_ID).commits[0].sha));
    expect(listingDenied.message).toContain(`has no access to ${GATED_REPO_ID}.`);
    const denied = await failure(client(DENIED_TOKEN).client.checkAccess(GATED_REPO_ID));
    expect(denied.message).toBe(
      `Your Hugging Face token (from HF_TOKEN, user \`world-denied\`) has no access to ${GATED_REPO_ID}. Request access at ${world.server.hubUrl}/${GATED_REPO_ID} (accept the licence) and rerun when it is approved.`,
    );
    expect((denied as HubError).status).toBe(403);

    const revoked = await failure(client("hf_revokedrevokedrevokedrevoked1234").client.whoami());
    expect(revoked.message).toMatch(/^The Hugging Face token from HF_TOKEN was rejected \(revoked or expired\)\./);

    for (const token of [GRANTED_TOKEN, null]) {
      const missing = await failure(client(token).client.resolveCommit("world/no-such-repo", "main"));
      expect(missing.message).toMatch(
        new RegExp(`^Repository world/no-such-repo not found on ${world.server.hubUrl}\\. Check --model; a private repository also needs a token that can see it\\. \\(request id Root=`),
      );
    }

    const commit = manifest().commits[0].sha;
    const file = await failure(
      client().client.request(`${world.server.hubUrl}/${OPEN_REPO_ID}/resolve/${commit}/nope.json`, { repo: OPEN_REPO_ID, revision: commit, path: "nope.json" }),
    );
    expect(file.message).toMatch(new RegExp(`^nope\\.json not found in ${OPEN_REPO_ID} at ${commit}\\. \\(request id Root=`));
  });

  it("other errors carry the Hub's own words, cut at 300 characters, and the request id", async () => {
    const url = `${world.server.hubUrl}/api/models/${OPEN_REPO_ID}?expand=nope`;
    const words = ((await (await fetch(url)).json()) as { error: string }).error;
    expect(words.length).toBeGreaterThan(300);
    const error = await failure(client().client.request(url, { repo: OPEN_REPO_ID }));
    expect(error.message).toMatch(new RegExp(`^The Hub answered 400 for ${OPEN_REPO_ID}: (.*) \\(request id Root=[^)]+\\)$`));
    expect(error.message).toContain(`: ${words.slice(0, 300)} (request id`);
    // An error without a JSON body (a 416 has none) keeps what there is.
    const commit = manifest().commits[0].sha;
    const empty = await failure(
      client().client.request(`${world.server.hubUrl}/${OPEN_REPO_ID}/resolve/${commit}/config.json`, { repo: OPEN_REPO_ID }, { range: "bytes=99999-" }),
    );
    expect(empty).toBeInstanceOf(HubError);
    expect(empty.message).toMatch(new RegExp(`^The Hub answered 416 for ${OPEN_REPO_ID}:  \\(request id Root=`));
  });
});

describe("retries (case 13)", () => {
  const url = () => `${world.server.hubUrl}/api/models/${OPEN_REPO_ID}/revision/main`;

  it("503 twice then 200: succeeds after waiting 1 s and 2 s, with two warnings naming the request id", async () => {
    await world.setScenario({ rules: [{ match: `/api/models/${OPEN_REPO_ID}/revision/main`, status: 503, times: 2 }] });
    const { client: c, waits, warnings } = client();
    expect(await c.resolveCommit(OPEN_REPO_ID, "main")).toBe(manifest().commits[0].sha);
    expect(waits).toEqual([1000, 2000]);
    expect(warnings).toEqual([
      expect.stringMatching(new RegExp(`^the Hub answered 503 for ${url()} \\(request id Root=1-[0-9a-f-]+\\); retrying in 1 s \\(try 2 of 5\\)$`)),
      expect.stringMatching(/; retrying in 2 s \(try 3 of 5\)$/),
    ]);
  });

  it("429 with Retry-After waits what the Hub asks (at most a minute)", async () => {
    await world.setScenario({
      rules: [
        { match: `/api/models/${OPEN_REPO_ID}/revision/main`, status: 429, retryAfterSeconds: 2, times: 1 },
        { match: `/api/models/${OPEN_REPO_ID}/revision/main`, status: 429, retryAfterSeconds: 3600, times: 1 },
      ],
    });
    const { client: c, waits, warnings } = client();
    await c.resolveCommit(OPEN_REPO_ID, "main");
    expect(waits).toEqual([2000, 60_000]);
    expect(warnings[0]).toMatch(/^the Hub answered 429 for .* retrying in 2 s \(try 2 of 5\)$/);
  });

  it("500 forever: five tries (waits 1, 2, 4, 8 s), then the status, the Hub's words and the request id", async () => {
    await world.setScenario({ rules: [{ match: `/api/models/${OPEN_REPO_ID}/revision/main`, status: 500 }] });
    const { client: c, waits, warnings } = client();
    const mark = await world.mark();
    const error = await failure(c.resolveCommit(OPEN_REPO_ID, "main"));
    expect(error.message).toMatch(/^The Hub answered 500 for world\/tiny-llama3: world scenario: injected 500 \(request id Root=1-[0-9a-f-]+\)$/);
    expect(waits).toEqual([1000, 2000, 4000, 8000]);
    expect(warnings).toHaveLength(4);
    expect((await world.requestsSince(mark)).map((r) => r.status)).toEqual([500, 500, 500, 500, 500]);
  });

  it("an unreachable endpoint: five tries, then a message naming it without its query, and the cause", async () => {
    const port = await closedPort();
    using cache = tempCache();
    const sleep = recordingSleep();
    const warnings: string[] = [];
    const c = new HubClient({ ...worldEnv(world, cache.path), endpoint: `http://127.0.0.1:${port}` }, testSignal(), (m) => warnings.push(m), sleep.sleep);
    const error = await failure(c.request(`http://127.0.0.1:${port}/x?X-Amz-Signature=secret`, { repo: OPEN_REPO_ID }));
    expect(error).toBeInstanceOf(FailedError);
    expect(error.message).toBe(`Could not reach http://127.0.0.1:${port}/x after 5 tries: ECONNREFUSED. Check your network, or HF_ENDPOINT.`);
    expect(error.cause).toMatchObject({ code: "ECONNREFUSED" });
    expect(sleep.waits).toEqual([1000, 2000, 4000, 8000]);
    expect(warnings).toEqual([2, 3, 4, 5].map((n) => `could not reach http://127.0.0.1:${port}/x (ECONNREFUSED); retrying (try ${n} of 5)`));
  });

  it("an interrupt ends the retries at once", async () => {
    await world.setScenario({ rules: [{ match: `/api/models/${OPEN_REPO_ID}/revision/main`, status: 503 }] });
    using cache = tempCache();
    const controller = new AbortController();
    const c = new HubClient(worldEnv(world, cache.path), controller.signal, () => {}, async () => controller.abort());
    const mark = await world.mark();
    await expect(c.resolveCommit(OPEN_REPO_ID, "main")).rejects.toBeInstanceOf(InterruptedError);
    // The abort came during the first wait: the second request is never answered.
    expect((await world.requestsSince(mark)).filter((r) => r.status === 503)).toHaveLength(1);

    const port = await closedPort();
    const stopped = new AbortController();
    stopped.abort();
    const unreachable = new HubClient({ ...worldEnv(world, cache.path), endpoint: `http://127.0.0.1:${port}` }, stopped.signal);
    const interrupted = await failure(unreachable.request(`http://127.0.0.1:${port}/x`, { repo: OPEN_REPO_ID }));
    expect(interrupted).toBeInstanceOf(InterruptedError);
    expect(interrupted.message).toBe("interrupted");
    expect(interrupted.cause).toBeInstanceOf(Error);
  });
});

it("HF_HUB_OFFLINE: no request at all, and a message saying what to do", async () => {
  const { client: c } = client(GRANTED_TOKEN, { HF_HUB_OFFLINE: "1" });
  const mark = await world.mark();
  const error = await failure(c.resolveCommit(OPEN_REPO_ID, "main"));
  expect(error).toBeInstanceOf(FailedError);
  expect(error.message).toBe(
    `HF_HUB_OFFLINE is set: not contacting ${world.server.hubUrl}/api/models/${OPEN_REPO_ID}/revision/main. Unset it, or make sure the model is in the cache.`,
  );
  expect(await world.requestsSince(mark)).toEqual([]);
});

it("the download helpers reach a run's client too", async () => {
  using cache = tempCache();
  expect(await newRun(world, cache.path).client.resolveCommit(OPEN_REPO_ID, "main")).toMatch(/^[0-9a-f]{40}$/);
});

/** A port nothing listens on. */
async function closedPort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const address = server.address();
  await new Promise((resolve) => server.close(resolve));
  return typeof address === "object" && address ? address.port : 0;
}
