/**
 * The checked-out commit as `.git` records it, read without running git, agrees with what
 * `git rev-parse HEAD` says in each shape a checkout can have: detached (as our clones are), on a
 * branch with a loose ref, on a branch whose ref was packed. Real git on temp folders.
 */
import { execFileSync } from "node:child_process";
import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { SimpleGitClient } from "../../../src/git/simple-git-client.ts";
import { tempDir } from "../../helpers/tmp.ts";

const git = (dir: string, ...args: string[]) =>
  execFileSync("git", ["-C", dir, "-c", "user.email=t@t", "-c", "user.name=t", ...args], { encoding: "utf8" }).trim();

function repoWithTwoCommits(dir: string): { first: string; second: string } {
  git(dir, "init", "--quiet", "--initial-branch", "main");
  writeFileSync(join(dir, "a"), "1");
  git(dir, "add", "a");
  git(dir, "commit", "--quiet", "-m", "one");
  const first = git(dir, "rev-parse", "HEAD");
  writeFileSync(join(dir, "a"), "2");
  git(dir, "commit", "--quiet", "-am", "two");
  return { first, second: git(dir, "rev-parse", "HEAD") };
}

describe("headCommit", () => {
  const client = new SimpleGitClient();

  it("on a branch (loose ref), detached, and on a packed branch, as git rev-parse says", async () => {
    using dir = tempDir();
    const { first, second } = repoWithTwoCommits(dir.path);
    expect(await client.headCommit(dir.path)).toBe(second);
    git(dir.path, "checkout", "--quiet", "--detach", first);
    expect(await client.headCommit(dir.path)).toBe(first);
    expect(await client.headCommit(dir.path)).toBe(git(dir.path, "rev-parse", "HEAD"));
    git(dir.path, "checkout", "--quiet", "main");
    git(dir.path, "pack-refs", "--all", "--prune");
    expect(await client.headCommit(dir.path)).toBe(second);
  });

  it("is undefined for a folder that is no checkout, or whose HEAD names nothing", async () => {
    using dir = tempDir();
    expect(await client.headCommit(dir.path)).toBeUndefined();
    expect(await client.headCommit(join(dir.path, "missing"))).toBeUndefined();
    mkdirSync(join(dir.path, ".git"));
    writeFileSync(join(dir.path, ".git/HEAD"), "ref: refs/heads/nothing\n");
    expect(await client.headCommit(dir.path)).toBeUndefined();
    writeFileSync(join(dir.path, ".git/HEAD"), "ref: refs/../../etc/passwd\n");
    expect(await client.headCommit(dir.path)).toBeUndefined();
    writeFileSync(join(dir.path, ".git/HEAD"), "garbage\n");
    expect(await client.headCommit(dir.path)).toBeUndefined();
  });
});
