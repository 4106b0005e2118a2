/**
 * The downloader's hashing thread on real files: it hashes what is on disk when it is told, in
 * steps, and every way it can fail ends a digest with the reason instead of leaving it waiting.
 * The thread handles its messages in order, so a second file's digest shows that everything told
 * before it has been hashed.
 */
import { createHash } from "node:crypto";
import { readdirSync, truncateSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it, vi } from "vitest";
import { HashThread } from "../../../src/hub/file-hash.ts";
import { tempDir } from "../../helpers/tmp.ts";

vi.setConfig({ testTimeout: 5_000 });

const sha256 = (...parts: (string | Buffer)[]) => parts.reduce((h, p) => h.update(p), createHash("sha256")).digest("hex");

/** Resolves once the thread has handled every message sent before it. */
async function handled(thread: HashThread, dir: string): Promise<void> {
  const path = join(dir, `barrier-${Math.random()}`);
  writeFileSync(path, "b");
  await thread.follow(path, { lfs: true, size: 1 }).digest();
}

describe("the hashing thread", () => {
  it("hashes a file as it grows, sha256 for LFS files and the git blob sha1 otherwise", async () => {
    using dir = tempDir();
    const thread = new HashThread(1);
    try {
      const path = join(dir.path, "f");
      const bytes = Buffer.from("0123456789".repeat(500_000));
      writeFileSync(path, "");
      const lfs = thread.follow(path, { lfs: true, size: bytes.length });
      const git = thread.follow(path, { lfs: false, size: bytes.length });
      for (let at = 0; at < bytes.length; at += 1_300_000) {
        writeFileSync(path, bytes.subarray(0, Math.min(bytes.length, at + 1_300_000)));
        lfs.advance(Math.min(bytes.length, at + 1_300_000));
        git.advance(Math.min(bytes.length, at + 1_300_000));
      }
      expect(await lfs.digest()).toBe(sha256(bytes));
      expect(await git.digest()).toBe(createHash("sha1").update(`blob ${bytes.length}\0`).update(bytes).digest("hex"));
      // An empty file has a digest too.
      writeFileSync(join(dir.path, "empty"), "");
      expect(await thread.follow(join(dir.path, "empty"), { lfs: true, size: 0 }).digest()).toBe(sha256(""));
    } finally {
      await thread.close();
    }
  });

  it("reads what is on disk when told, and is told only once a step of new bytes has piled up", async () => {
    using dir = tempDir();
    const thread = new HashThread(10);
    try {
      const path = join(dir.path, "f");
      const version = (c: string) => Buffer.alloc(20, c);
      writeFileSync(path, version("a"));
      const hash = thread.follow(path, { lfs: true, size: 20 });
      hash.advance(9); // less than a step: not told
      await handled(thread, dir.path);
      writeFileSync(path, version("b"));
      hash.advance(10); // a step: told, so bytes 0-9 are read now ("b")
      await handled(thread, dir.path);
      writeFileSync(path, version("c"));
      hash.advance(19); // 9 more than told: not told
      await handled(thread, dir.path);
      writeFileSync(path, version("d"));
      // The rest (10-19) is read when the digest is asked for.
      expect(await hash.digest()).toBe(sha256(version("b").subarray(0, 10), version("d").subarray(10)));
    } finally {
      await thread.close();
    }
  });

  it("holds no file open between steps", async () => {
    using dir = tempDir();
    const thread = new HashThread(1);
    try {
      const path = join(dir.path, "f");
      writeFileSync(path, Buffer.alloc(3 * 1024 * 1024 + 5, 1));
      await handled(thread, dir.path);
      const open = readdirSync("/proc/self/fd").length;
      const hash = thread.follow(path, { lfs: true, size: 3 * 1024 * 1024 + 5 });
      hash.advance(1024 * 1024);
      await handled(thread, dir.path);
      expect(readdirSync("/proc/self/fd").length).toBe(open);
      await hash.digest();
      expect(readdirSync("/proc/self/fd").length).toBe(open);
    } finally {
      await thread.close();
    }
  });

  it("a file that is not there, or shorter than its size: the digest fails with the reason", async () => {
    using dir = tempDir();
    const thread = new HashThread(1);
    try {
      const missing = thread.follow(join(dir.path, "missing"), { lfs: true, size: 5 });
      missing.advance(3);
      await expect(missing.digest()).rejects.toMatchObject({ code: "ENOENT", message: expect.stringContaining("no such file") });
      const path = join(dir.path, "short");
      writeFileSync(path, "abc");
      await expect(thread.follow(path, { lfs: false, size: 5 }).digest()).rejects.toMatchObject({
        message: `${path} ends at 3 bytes, before 5`,
        code: undefined,
      });
      // The thread goes on with other files.
      expect(await thread.follow(path, { lfs: true, size: 3 }).digest()).toBe(sha256("abc"));
    } finally {
      await thread.close();
    }
  });

  it("a dropped hash is forgotten: a digest asked for afterwards fails rather than waits", async () => {
    using dir = tempDir();
    const thread = new HashThread(1);
    try {
      const path = join(dir.path, "f");
      writeFileSync(path, "abc");
      const hash = thread.follow(path, { lfs: true, size: 3 });
      hash.advance(2);
      hash.drop();
      await expect(hash.digest()).rejects.toThrow(/^hash \d+ was dropped$/);
    } finally {
      await thread.close();
    }
  });

  it("closed: a digest waiting fails, and so does every later one", async () => {
    using dir = tempDir();
    const thread = new HashThread(1);
    const path = join(dir.path, "big");
    writeFileSync(path, "");
    truncateSync(path, 1024 * 1024 * 1024);
    // Long enough to be cut off part-way: the thread is ended while it hashes.
    const waiting = thread.follow(path, { lfs: true, size: 1024 * 1024 * 1024 }).digest();
    await thread.close();
    await expect(waiting).rejects.toThrow(/^the hashing thread ended \(exit code \d+\)$/);
    await expect(thread.follow(path, { lfs: true, size: 1 }).digest()).rejects.toThrow("the hashing thread was closed");
    // Closing twice is harmless, and a thread never used starts nothing to close.
    await thread.close();
    await new HashThread(1).close();
  });
});
