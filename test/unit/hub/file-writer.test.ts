/**
 * The downloader's batched file stream on real files: bytes land at their offset, in order, a
 * batch at a time; `bytesWritten` is never ahead of the file; a slow trickle still reaches the disk
 * without an end; a full disk keeps and counts what fitted.
 */
import { execFileSync } from "node:child_process";
import { once } from "node:events";
import { mkdirSync, readdirSync, readFileSync, statSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { Writable } from "node:stream";
import { describe, expect, it } from "vitest";
import { after, batchDelayMs, BatchedFileWriter } from "../../../src/hub/file-writer.ts";
import { tempDir } from "../../helpers/tmp.ts";

/** Resolves once `stream` has taken `chunk` (its callback). */
function written(stream: Writable, chunk: Buffer): Promise<void> {
  return new Promise((resolve, reject) => stream.write(chunk, (error) => (error ? reject(error) : resolve())));
}

describe("the batched file stream", () => {
  it("writes a batch once it is full and the rest at the end; bytesWritten is what the file holds", async () => {
    using dir = tempDir();
    const path = join(dir.path, "f");
    const out = new BatchedFileWriter(path, { flags: "w", start: 0, batchBytes: 10 });
    await written(out, Buffer.from("0123"));
    await written(out, Buffer.from("4567"));
    // Less than a batch: nothing written yet.
    expect(out.bytesWritten).toBe(0);
    expect(readFileSync(path, "utf8")).toBe("");
    // Exactly a batch: written.
    await written(out, Buffer.from("89"));
    expect(out.bytesWritten).toBe(10);
    expect(readFileSync(path, "utf8")).toBe("0123456789");
    await written(out, Buffer.from("abcdefghijkl"));
    expect(out.bytesWritten).toBe(22);
    out.end(Buffer.from("mn"));
    await once(out, "finish");
    expect(out.bytesWritten).toBe(24);
    expect(readFileSync(path, "utf8")).toBe("0123456789abcdefghijklmn");
  });

  it("r+ from an offset writes over those bytes only", async () => {
    using dir = tempDir();
    const path = join(dir.path, "f");
    writeFileSync(path, "aaaaaaaaaa");
    const out = new BatchedFileWriter(path, { flags: "r+", start: 3, batchBytes: 2 });
    await written(out, Buffer.from("bbb"));
    out.end(Buffer.from("c"));
    await once(out, "finish");
    expect(readFileSync(path, "utf8")).toBe("aaabbbcaaa");
    expect(out.bytesWritten).toBe(4);
  });

  it("the mode it is made with (less the umask)", async () => {
    using dir = tempDir();
    const path = join(dir.path, "f");
    const out = new BatchedFileWriter(path, { flags: "w", start: 0, mode: 0o600, batchBytes: 4 });
    out.end(Buffer.from("x"));
    await once(out, "finish");
    expect(statSync(path).mode & 0o777).toBe(0o600);
  });

  it("a batch that does not fill is written a moment later, without an end", async () => {
    using dir = tempDir();
    const path = join(dir.path, "f");
    const out = new BatchedFileWriter(path, { flags: "w", start: 0, batchBytes: 1000 });
    await written(out, Buffer.from("slow"));
    expect(out.bytesWritten).toBe(0);
    // Polled with no deadline but the test's: how soon is not asserted, only that it comes.
    while (out.bytesWritten === 0) await new Promise((resolve) => setTimeout(resolve, batchDelayMs));
    expect(readFileSync(path, "utf8")).toBe("slow");
    await written(out, Buffer.from("er"));
    out.end();
    await once(out, "finish");
    expect(readFileSync(path, "utf8")).toBe("slower");
    expect(out.bytesWritten).toBe(6);
  });

  it("as a pipe's end: many chunks of a body land whole and in order", async () => {
    using dir = tempDir();
    const path = join(dir.path, "f");
    const body = Buffer.from(Array.from({ length: 5000 }, (_, i) => i % 251));
    const out = new BatchedFileWriter(path, { flags: "w", start: 0, batchBytes: 333 });
    for (let at = 0; at < body.length; at += 17) out.write(body.subarray(at, at + 17));
    out.end();
    await once(out, "finish");
    expect(readFileSync(path).equals(body)).toBe(true);
    expect(out.bytesWritten).toBe(body.length);
  });

  it("admit sees each chunk first, with the bytes written so far: false drops it, a promise holds the stream until it settles", async () => {
    using dir = tempDir();
    const path = join(dir.path, "f");
    const seen: [string, number][] = [];
    let release: (take: boolean) => void = () => {};
    const out = new BatchedFileWriter(path, {
      flags: "w",
      start: 0,
      batchBytes: 2,
      admit: (chunk, written) => {
        seen.push([chunk.toString(), written]);
        if (chunk.toString() === "no") return false;
        if (chunk.toString().startsWith("wait")) return new Promise<boolean>((resolve) => (release = resolve));
        return true;
      },
    });
    await written(out, Buffer.from("ab"));
    await written(out, Buffer.from("no"));
    let taken = false;
    const waiting = written(out, Buffer.from("wait")).then(() => (taken = true));
    await new Promise((resolve) => setImmediate(resolve));
    expect(taken).toBe(false);
    release(true);
    await waiting;
    const dropped = written(out, Buffer.from("wait-not"));
    await new Promise((resolve) => setImmediate(resolve));
    release(false);
    await dropped;
    out.end();
    await once(out, "finish");
    expect(readFileSync(path, "utf8")).toBe("abwait");
    expect(seen).toEqual([
      ["ab", 0],
      ["no", 2],
      ["wait", 2],
      ["wait-not", 6],
    ]);
  });

  it("admit that throws or rejects fails the stream with that error; nothing of the chunk is written", async () => {
    using dir = tempDir();
    for (const refuse of [() => { throw new Error("too much"); }, () => Promise.reject(new Error("too much"))]) {
      const path = join(dir.path, `f${Math.random()}`);
      let first = true;
      const out = new BatchedFileWriter(path, {
        flags: "w",
        start: 0,
        batchBytes: 1,
        admit: () => {
          if (!first) return refuse();
          first = false;
          return true;
        },
      });
      await written(out, Buffer.from("ok"));
      out.write(Buffer.from("bad"));
      const [error] = (await once(out, "error").catch((e: unknown) => [e])) as [Error];
      expect(error.message).toBe("too much");
      expect(readFileSync(path, "utf8")).toBe("ok");
    }
  });

  it("a folder that is not there: the stream fails with ENOENT", async () => {
    using dir = tempDir();
    const out = new BatchedFileWriter(join(dir.path, "missing", "f"), { flags: "w", start: 0, batchBytes: 4 });
    const [error] = (await once(out, "error").catch((e: unknown) => [e])) as [NodeJS.ErrnoException];
    expect(error.code).toBe("ENOENT");
  });

  it("destroyed: what the batch held is dropped and the file is closed", async () => {
    using dir = tempDir();
    const path = join(dir.path, "f");
    const open = readdirSync("/proc/self/fd").length;
    const out = new BatchedFileWriter(path, { flags: "w", start: 0, batchBytes: 100 });
    await written(out, Buffer.from("held"));
    expect(readdirSync("/proc/self/fd").length).toBe(open + 1);
    out.destroy();
    await once(out, "close");
    expect(readdirSync("/proc/self/fd").length).toBe(open);
    expect(readFileSync(path, "utf8")).toBe("");
    expect(out.bytesWritten).toBe(0);
  });

  it.skipIf(process.getuid?.() !== 0)("the disk fills up: what fitted is written and counted, then ENOSPC (a 64 kB tmpfs)", async () => {
    using dir = tempDir();
    const small = join(dir.path, "small");
    mkdirSync(small);
    execFileSync("mount", ["-t", "tmpfs", "-o", "size=64k", "tmpfs", small]);
    try {
      const path = join(small, "f");
      const body = Buffer.from(Array.from({ length: 200_000 }, (_, i) => i % 253));
      // One batch far larger than the disk: a short write, then the rest fails.
      const out = new BatchedFileWriter(path, { flags: "w", start: 0, batchBytes: 1024 * 1024 });
      for (let at = 0; at < body.length; at += 10_000) out.write(body.subarray(at, at + 10_000));
      out.end();
      const [error] = (await once(out, "error").catch((e: unknown) => [e])) as [NodeJS.ErrnoException];
      expect(error.code).toBe("ENOSPC");
      const onDisk = readFileSync(path);
      expect(onDisk.length).toBeGreaterThan(0);
      expect(onDisk.length).toBeLessThan(body.length);
      expect(out.bytesWritten).toBe(onDisk.length);
      expect(onDisk.equals(body.subarray(0, onDisk.length))).toBe(true);
    } finally {
      execFileSync("umount", [small]);
    }
  });
});

describe("after (what a short write leaves)", () => {
  const chunks = [Buffer.from("abc"), Buffer.from("de"), Buffer.from("fgh")];
  const text = (bs: Buffer[]) => bs.map((b) => b.toString()).join("|");

  it("nothing written: every chunk, empty ones left out", () => {
    expect(text(after(chunks, 0))).toBe("abc|de|fgh");
    expect(text(after([Buffer.alloc(0), ...chunks], 0))).toBe("abc|de|fgh");
  });

  it("part of a chunk: the rest of it and the chunks after", () => {
    expect(text(after(chunks, 1))).toBe("bc|de|fgh");
    expect(text(after(chunks, 4))).toBe("e|fgh");
  });

  it("whole chunks: the ones after", () => {
    expect(text(after(chunks, 3))).toBe("de|fgh");
    expect(text(after(chunks, 5))).toBe("fgh");
  });

  it("all of it: nothing", () => {
    expect(after(chunks, 8)).toEqual([]);
  });
});
