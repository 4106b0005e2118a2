/**
 * What the hashing thread does with each message (HashJobs), on the main thread and real files:
 * every byte goes into the hash once and in order, read from the disk when told; whatever goes
 * wrong is answered with the reason when the digest is asked for.
 */
import { createHash } from "node:crypto";
import { fstatSync, readdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { HashJobs } from "../../../src/hub/hash-worker.ts";
import { tempDir } from "../../helpers/tmp.ts";

const sha256 = (...parts: (string | Buffer)[]) => parts.reduce((h, p) => h.update(p), createHash("sha256")).digest("hex");
const start = (id: number, path: string) => ({ kind: "start", id, path, algorithm: "sha256", prefix: "" }) as const;
const advance = (id: number, upTo: number, digest = false) => ({ kind: "advance", id, upTo, digest }) as const;

describe("the hashing thread's jobs", () => {
  it("hashes what is on disk up to where it is told, each byte once: told twice or told less adds nothing", () => {
    using dir = tempDir();
    const path = join(dir.path, "f");
    const bytes = Buffer.from("abcdefghijklmnopqrstuvwxyz".repeat(40));
    writeFileSync(path, bytes);
    // Reads of 7 bytes: every step is several reads, most of them cut by the step's end.
    const jobs = new HashJobs(7);
    expect(jobs.handle(start(1, path))).toBeUndefined();
    expect(jobs.handle(advance(1, 100))).toBeUndefined();
    jobs.handle(advance(1, 100));
    jobs.handle(advance(1, 50));
    jobs.handle(advance(1, 333));
    expect(jobs.handle(advance(1, bytes.length, true))).toEqual({ id: 1, digest: sha256(bytes) });
    // Answered: forgotten.
    expect(jobs.size).toBe(0);
  });

  it("reads each step when told, not before and not again: later changes to hashed bytes are not seen", () => {
    using dir = tempDir();
    const path = join(dir.path, "f");
    writeFileSync(path, Buffer.alloc(30, "a"));
    const jobs = new HashJobs();
    jobs.handle(start(1, path));
    jobs.handle(advance(1, 10));
    writeFileSync(path, Buffer.alloc(30, "b"));
    jobs.handle(advance(1, 20));
    writeFileSync(path, Buffer.alloc(30, "c"));
    expect(jobs.handle(advance(1, 30, true))).toEqual({ id: 1, digest: sha256("a".repeat(10), "b".repeat(10), "c".repeat(10)) });
  });

  it("the git blob sha1 for files outside LFS: sha1 of the header and the bytes", () => {
    using dir = tempDir();
    const path = join(dir.path, "f");
    writeFileSync(path, "hello\n");
    const jobs = new HashJobs();
    jobs.handle({ kind: "start", id: 4, path, algorithm: "sha1", prefix: "blob 6\0" });
    // git hash-object of "hello\n".
    expect(jobs.handle(advance(4, 6, true))).toEqual({ id: 4, digest: "ce013625030ba8dba906f756967f9e9ca394464a" });
  });

  it("files are kept apart by id", () => {
    using dir = tempDir();
    writeFileSync(join(dir.path, "a"), "aaaa");
    writeFileSync(join(dir.path, "b"), "bbbbbb");
    const jobs = new HashJobs();
    jobs.handle(start(1, join(dir.path, "a")));
    jobs.handle(start(2, join(dir.path, "b")));
    jobs.handle(advance(2, 3));
    jobs.handle(advance(1, 2));
    expect(jobs.size).toBe(2);
    expect(jobs.handle(advance(2, 6, true))).toEqual({ id: 2, digest: sha256("bbbbbb") });
    expect(jobs.handle(advance(1, 4, true))).toEqual({ id: 1, digest: sha256("aaaa") });
  });

  it("a file shorter than it was said to be: the digest answers why, and nothing more is read after", () => {
    using dir = tempDir();
    const path = join(dir.path, "f");
    writeFileSync(path, "abc");
    const jobs = new HashJobs();
    jobs.handle(start(1, path));
    jobs.handle(advance(1, 5));
    // The bytes are there now, but the hash has a hole at 3: it stays failed.
    writeFileSync(path, "abcdef");
    expect(jobs.handle(advance(1, 6, true))).toEqual({ id: 1, error: `${path} ends at 3 bytes, before 5`, code: undefined });
  });

  it("a file that is not there: the digest answers the error and its code", () => {
    using dir = tempDir();
    const path = join(dir.path, "missing");
    const jobs = new HashJobs();
    jobs.handle(start(1, path));
    const reply = jobs.handle(advance(1, 5, true));
    expect(reply).toEqual({ id: 1, error: expect.stringContaining("no such file or directory"), code: "ENOENT" });
    expect(jobs.size).toBe(0);
  });

  it("a dropped file is forgotten: a digest asked for afterwards is answered as dropped", () => {
    using dir = tempDir();
    const path = join(dir.path, "f");
    writeFileSync(path, "abc");
    const jobs = new HashJobs();
    jobs.handle(start(7, path));
    jobs.handle(advance(7, 2));
    expect(jobs.handle({ kind: "drop", id: 7 })).toBeUndefined();
    expect(jobs.size).toBe(0);
    // Told more: nothing to hash it into.
    expect(jobs.handle(advance(7, 3))).toBeUndefined();
    expect(jobs.handle(advance(7, 3, true))).toEqual({ id: 7, error: "hash 7 was dropped", code: undefined });
  });

  it("flushes a file to the disk each time another `syncBytes` of it is hashed, with the file open for it", () => {
    using dir = tempDir();
    const path = join(dir.path, "f");
    writeFileSync(path, Buffer.alloc(40, 1));
    const synced: number[] = [];
    // What was hashed when each flush came, and that it came with a descriptor of the file.
    let hashedSoFar = 0;
    const jobs = new HashJobs(4, 10, (fd) => {
      expect(fstatSync(fd).size).toBe(40);
      synced.push(hashedSoFar);
    });
    jobs.handle(start(1, path));
    for (const upTo of [5, 10, 15, 20, 25, 32]) {
      hashedSoFar = upTo;
      jobs.handle(advance(1, upTo));
    }
    expect(synced).toEqual([10, 20, 32]);
    expect(jobs.handle(advance(1, 40, true))).toEqual({ id: 1, digest: sha256(Buffer.alloc(40, 1)) });
    // 40 is 8 past the last flush: none more.
    expect(synced).toEqual([10, 20, 32]);
  });

  it("holds no file open between steps", () => {
    using dir = tempDir();
    const path = join(dir.path, "f");
    writeFileSync(path, Buffer.alloc(100_000, 1));
    const jobs = new HashJobs(4096);
    const open = readdirSync("/proc/self/fd").length;
    jobs.handle(start(1, path));
    jobs.handle(advance(1, 50_000));
    expect(readdirSync("/proc/self/fd").length).toBe(open);
    jobs.handle(advance(1, 100_000, true));
    expect(readdirSync("/proc/self/fd").length).toBe(open);
  });
});
