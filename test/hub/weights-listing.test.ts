/**
 * The weights step's Hub source lists a commit's tree once: a commit never changes, so the files
 * recorded for the commit main still names are its listing (no request), checked as a listing
 * from the Hub is; another commit, or a record of another repository, is listed again.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { hubSource } from "../../src/pipeline/steps/weights/hub-source.ts";
import { endRuns, type HubWorld, newRun, OPEN_REPO_ID, startHubWorld, tempCache } from "./hub-world.ts";

let world: HubWorld;
beforeAll(async () => {
  world = await startHubWorld();
});
afterAll(() => {
  endRuns();
  world?.close();
});

async function treeRequests(since: number): Promise<string[]> {
  return (await world.requestsSince(since)).filter((r) => r.path.includes("/tree/")).map((r) => r.path);
}

describe("the Hub source's listing", () => {
  it("is asked once for a commit; a record of that commit stands for it; another commit or repository is listed again", async () => {
    using cache = tempCache();
    const source = hubSource(newRun(world, cache.path).client, OPEN_REPO_ID, "main");
    let mark = await world.mark();
    const listed = await source.list();
    // The world's Hub pages its listings, as the real one does for large trees.
    const pages = await treeRequests(mark);
    expect(new Set(pages)).toEqual(new Set([`/api/models/${OPEN_REPO_ID}/tree/${listed.commit}`]));
    expect(listed.files.length).toBeGreaterThan(0);

    mark = await world.mark();
    expect(await source.list(listed)).toEqual(listed);
    expect(await treeRequests(mark)).toEqual([]);
    // The revision is still asked: "did main move" is the question a no-op build must answer.
    expect((await world.requestsSince(mark)).map((r) => r.path)).toEqual([`/api/models/${OPEN_REPO_ID}/revision/main`]);

    mark = await world.mark();
    expect(await source.list({ ...listed, commit: "0".repeat(40) })).toEqual(listed);
    expect(await source.list({ ...listed, mountDir: `${listed.mountDir}-other` })).toEqual(listed);
    expect(await source.list({ ...listed, files: listed.files.map(({ oid: _, ...rest }) => rest) })).toEqual(listed);
    // A record without a file conversion needs (an older version's): listed again.
    expect(await source.list({ ...listed, files: listed.files.filter((f) => f.path !== "config.json") })).toEqual(listed);
    expect(await treeRequests(mark)).toHaveLength(4 * pages.length);
  });

  it("a recorded listing is checked as the Hub's is: a path that escapes the snapshot is refused", async () => {
    using cache = tempCache();
    const source = hubSource(newRun(world, cache.path).client, OPEN_REPO_ID, "main");
    const listed = await source.list();
    const hostile = { ...listed, files: [...listed.files, { path: "../../escape.json", size: 2, oid: "a".repeat(40) }] };
    await expect(source.list(hostile)).rejects.toThrow(/^Invalid filename "\.\.\/\.\.\/escape\.json" in world\/tiny-llama3 \(.+\): refusing to download anything/);
  });
});
