import { Worker } from "node:worker_threads";
import type { HashReply, HashRequest } from "./hash-worker.ts";

/**
 * How far the bytes on disk may run ahead of what the hashing thread was told: one message per
 * step (4 MiB: 256 messages a GiB, and the bytes still in the page cache when they are read).
 */
export const hashStepBytes = 4 * 1024 * 1024;

/**
 * The worker's own file: src/hub/hash-worker.ts when run from src/ (tests, bench), dist/hub/hash-worker.js
 * in the package. By way of `..`: in dist/ this code sits in a bundle one folder down
 * (dist/chunks/ or dist/cli/), and the worker stays a file of its own (scripts/build.ts).
 */
const workerUrl = new URL(import.meta.url.endsWith(".ts") ? "../hub/hash-worker.ts" : "../hub/hash-worker.js", import.meta.url);

/** One file's hash, taken by the hashing thread from the file's bytes on disk. */
export interface FileHash {
  /** Bytes below `upTo` are on disk and will not change: the thread may hash them (it is told once a step has piled up). */
  advance(upTo: number): void;
  /** The hex digest of the whole file, once all of it is on disk; afterwards the hash is gone. */
  digest(): Promise<string>;
  /** Not to be hashed after all (the file starts over, or is given up); harmless after digest. */
  drop(): void;
}

/**
 * One hashing thread for a download, shared by its files (hash-worker.ts): a file's hash is
 * taken from what is on disk, as it lands, instead of on the main thread between receives. The
 * thread starts with the first file to hash; `close` ends it.
 */
export class HashThread {
  /** Bytes on disk that pile up before the thread is told of them. */
  readonly stepBytes: number;
  #worker: Worker | undefined;
  #nextId = 1;
  /** Digests asked for and not yet answered. */
  readonly #waiting = new Map<number, { resolve: (digest: string) => void; reject: (error: Error) => void }>();
  /** Why the thread is gone, once it is: every digest after that fails with it. */
  #broken: Error | undefined;

  constructor(stepBytes: number) {
    this.stepBytes = stepBytes;
  }

  /** Hashes `path` as the caller reports its bytes on disk: sha256 for LFS files, the git blob sha1 otherwise. */
  follow(path: string, file: { readonly lfs: boolean; readonly size: number }): FileHash {
    const id = this.#nextId++;
    this.#post({ kind: "start", id, path, algorithm: file.lfs ? "sha256" : "sha1", prefix: file.lfs ? "" : `blob ${file.size}\0` });
    let told = 0;
    return {
      advance: (upTo) => {
        if (upTo - told < this.stepBytes) return;
        told = upTo;
        this.#post({ kind: "advance", id, upTo, digest: false });
      },
      digest: () => {
        const answer = new Promise<string>((resolve, reject) => {
          if (this.#broken) return reject(this.#broken);
          this.#waiting.set(id, { resolve, reject });
        });
        this.#post({ kind: "advance", id, upTo: file.size, digest: true });
        return answer;
      },
      drop: () => this.#post({ kind: "drop", id }),
    };
  }

  async close(): Promise<void> {
    const worker = this.#worker;
    this.#broken ??= new Error("the hashing thread was closed");
    await worker?.terminate();
  }

  #post(request: HashRequest): void {
    if (this.#broken) return;
    this.#worker ??= this.#start();
    this.#worker.postMessage(request);
  }

  #start(): Worker {
    const worker = new Worker(workerUrl);
    worker.on("message", (reply: HashReply) => {
      const waiting = this.#waiting.get(reply.id);
      this.#waiting.delete(reply.id);
      if ("digest" in reply) waiting?.resolve(reply.digest);
      else waiting?.reject(Object.assign(new Error(reply.error), { code: reply.code }));
    });
    const fail = (error: Error) => {
      this.#broken ??= error;
      for (const { reject } of this.#waiting.values()) reject(error);
      this.#waiting.clear();
    };
    worker.on("error", fail);
    worker.on("exit", (code) => fail(new Error(`the hashing thread ended (exit code ${code})`)));
    return worker;
  }
}
