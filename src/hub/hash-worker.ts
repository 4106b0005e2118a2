/**
 * The downloader's hashing thread (started by file-hash.ts, its only client). It hashes each
 * partial file from byte 0 as the main thread reports bytes on disk, reading them back (from the
 * page cache, still warm), so that receiving on the main thread and hashing here overlap: on one
 * thread the two take turns, and sha256 costs about as much CPU as the receive path itself. Now
 * and then it flushes what it hashed to the disk, while the download goes on.
 *
 * Written by hand: there is no library for "hash a file that is still growing" in a thread, and
 * this is a loop of reads into hash.update. `HashJobs` holds all of it and is tested on the main
 * thread (test/unit/hub/hash-worker.test.ts), where Stryker can switch its mutants on; the thread
 * only passes messages to it.
 */
import { createHash, type Hash } from "node:crypto";
import { closeSync, fdatasyncSync, openSync, readSync } from "node:fs";
import { parentPort } from "node:worker_threads";

export type HashRequest =
  /** Begin hashing `path` (sha256, or sha1 after `prefix`: the git blob header). */
  | { readonly kind: "start"; readonly id: number; readonly path: string; readonly algorithm: "sha256" | "sha1"; readonly prefix: string }
  /** Bytes below `upTo` are on disk and final: hash them; with `digest`, answer the digest then. */
  | { readonly kind: "advance"; readonly id: number; readonly upTo: number; readonly digest: boolean }
  /** Forget the file (started over, or given up). */
  | { readonly kind: "drop"; readonly id: number };

export type HashReply =
  | { readonly id: number; readonly digest: string }
  | { readonly id: number; readonly error: string; readonly code: string | undefined };

interface Job {
  readonly path: string;
  readonly hash: Hash;
  /** Bytes from the start of the file that are in the hash: each byte goes in once, in order. */
  hashed: number;
  /** Bytes from the start that this thread has flushed to the disk. */
  synced: number;
  /** Why hashing it stopped: answered when its digest is asked for. */
  failed?: NodeJS.ErrnoException;
}

/** The files being hashed, by id: what the thread does with each message. */
export class HashJobs {
  readonly #jobs = new Map<number, Job>();
  /** One read buffer, reused: hash.update has consumed it before the next read. */
  readonly #buffer: Buffer;

  readonly #syncBytes: number;
  readonly #sync: (fd: number) => void;

  /**
   * `syncBytes`: each file is flushed to the disk (fdatasync) once that much more of it has been
   * hashed, so that the fsync before its rename finds little left to write; with the four shards
   * of the bench ending together, that wait went from 0.40 s to 0.16-0.19 s (bench/download.ts).
   * `sync` is the flush (tests record it).
   */
  constructor(readBytes = 1024 * 1024, syncBytes = 64 * 1024 * 1024, sync: (fd: number) => void = fdatasyncSync) {
    this.#buffer = Buffer.allocUnsafe(readBytes);
    this.#syncBytes = syncBytes;
    this.#sync = sync;
  }

  /** Handles one request; a digest request gets its answer back. */
  handle(request: HashRequest): HashReply | undefined {
    const job = this.#jobs.get(request.id);
    if (request.kind === "start") {
      this.#jobs.set(request.id, { path: request.path, hash: createHash(request.algorithm).update(request.prefix), hashed: 0, synced: 0 });
      return undefined;
    }
    if (request.kind === "drop") {
      this.#jobs.delete(request.id);
      return undefined;
    }
    if (job) this.#advance(job, request.upTo);
    if (!request.digest) return undefined;
    this.#jobs.delete(request.id);
    return answer(request.id, job);
  }

  /** Files still followed (started, and neither dropped nor answered). */
  get size(): number {
    return this.#jobs.size;
  }

  /** Hashes the job's file from where it stopped up to `upTo`, reading what is on disk now. */
  #advance(job: Job, upTo: number): void {
    if (job.failed || job.hashed >= upTo) return;
    try {
      // Opened per step, never held: a thread that is terminated leaves no descriptor behind.
      const fd = openSync(job.path, "r");
      try {
        while (job.hashed < upTo) {
          const read = readSync(fd, this.#buffer, 0, Math.min(this.#buffer.length, upTo - job.hashed), job.hashed);
          if (read === 0) throw new Error(`${job.path} ends at ${job.hashed} bytes, before ${upTo}`);
          job.hash.update(this.#buffer.subarray(0, read));
          job.hashed += read;
        }
        if (job.hashed - job.synced >= this.#syncBytes) {
          this.#sync(fd);
          job.synced = job.hashed;
        }
      } finally {
        closeSync(fd);
      }
    } catch (error) {
      job.failed = error as NodeJS.ErrnoException;
    }
  }
}

function answer(id: number, job: Job | undefined): HashReply {
  if (!job) return { id, error: `hash ${id} was dropped`, code: undefined };
  if (job.failed) return { id, error: job.failed.message, code: job.failed.code };
  return { id, digest: job.hash.digest("hex") };
}

// Loaded on the main thread too (the tests, dist/'s every-module-loads test): there it does nothing.
if (parentPort) {
  const port = parentPort;
  const jobs = new HashJobs();
  port.on("message", (request: HashRequest) => {
    const reply = jobs.handle(request);
    if (reply) port.postMessage(reply);
  });
}
