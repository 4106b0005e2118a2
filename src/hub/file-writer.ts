import { type FileHandle, open } from "node:fs/promises";
import { Writable } from "node:stream";

/**
 * Bytes gathered into one write (1 MiB). Node's socket hands a body over in 64 KiB reads, and
 * fs.WriteStream writes each on its own whenever the disk keeps up: 16 k writes a GiB, each a trip
 * through libuv's thread pool and back to the event loop. In 1 MiB writes the same bytes cost the
 * receiving process about a fifth less CPU (bench/download.ts, and the measurement in the commit).
 */
export const writeBatchBytes = 1024 * 1024;

/**
 * The longest a byte waits in a batch (50 ms): on a slow link a batch fills slowly, and the file
 * (what a killed run leaves to resume from) should grow as the bytes come, not a MiB at a time.
 */
export const batchDelayMs = 50;

export interface BatchedFileOptions {
  /** "w" to start the file, "r+" to write into one that exists. */
  readonly flags: "w" | "r+";
  /** Where in the file the first byte goes. */
  readonly start: number;
  /** Of a file it makes (less the umask); Node's 0o666 without. */
  readonly mode?: number;
  readonly batchBytes: number;
  /**
   * Asked about each chunk before it is taken (counting, checks, records), with the bytes written
   * so far: `false` drops it, a
   * promise holds the stream until it settles, a throw or a rejection fails the stream. Here
   * rather than in a Transform before the file: one stream hop less for every 64 KiB, which
   * measured a tenth of the receiving process's CPU.
   */
  readonly admit?: (chunk: Buffer, bytesWritten: number) => boolean | Promise<boolean>;
}

/**
 * A file stream like fs.WriteStream, written in batches: one pwritev once `batchBytes` have
 * gathered, or `batchDelayMs` after the first byte of a batch, and the rest at the end; one write
 * at a time, in order. `bytesWritten` counts only what has reached the file, so a count taken from
 * it (the parts record, the hashing thread) is never ahead of the disk. Written by hand:
 * fs.WriteStream batches only what piles up while a write is in flight, and has no batch size.
 */
export class BatchedFileWriter extends Writable {
  /** Bytes that have reached the file. */
  bytesWritten = 0;
  readonly #path: string;
  readonly #options: BatchedFileOptions;
  #handle: FileHandle | undefined;
  #batch: Buffer[] = [];
  #batchLength = 0;
  /** The write in flight, if any: the next one starts after it. */
  #writing: Promise<void> = Promise.resolve();
  #timer: NodeJS.Timeout | undefined;

  constructor(path: string, options: BatchedFileOptions) {
    // Room for a batch and the next one arriving while it is written: the socket keeps reading.
    super({ highWaterMark: 2 * options.batchBytes });
    this.#path = path;
    this.#options = options;
  }

  override _construct(callback: (error?: Error | null) => void): void {
    open(this.#path, this.#options.flags, this.#options.mode).then(
      (handle) => {
        this.#handle = handle;
        callback();
      },
      callback,
    );
  }

  override _write(chunk: Buffer, _encoding: BufferEncoding, callback: (error?: Error | null) => void): void {
    let verdict: boolean | Promise<boolean>;
    try {
      verdict = this.#options.admit?.(chunk, this.bytesWritten) ?? true;
    } catch (error) {
      return callback(error as Error);
    }
    if (verdict === true) return this.#take(chunk, callback);
    if (verdict === false) return callback();
    verdict.then((take) => (take ? this.#take(chunk, callback) : callback()), callback);
  }

  #take(chunk: Buffer, callback: (error?: Error | null) => void): void {
    this.#batch.push(chunk);
    this.#batchLength += chunk.length;
    if (this.#batchLength < this.#options.batchBytes) {
      // A failed write ends the stream with its error; the bytes before it are counted.
      this.#timer ??= setTimeout(() => this.#flush().catch((error: Error) => this.destroy(error)), batchDelayMs);
      return callback();
    }
    this.#flush().then(() => callback(), callback);
  }

  override _final(callback: (error?: Error | null) => void): void {
    this.#flush().then(() => callback(), callback);
  }

  override _destroy(error: Error | null, callback: (error?: Error | null) => void): void {
    // What is still in the batch is dropped, as fs.WriteStream drops what it holds.
    clearTimeout(this.#timer);
    this.#timer = undefined;
    const handle = this.#handle;
    this.#handle = undefined;
    // close() waits for a write in flight.
    if (!handle) return callback(error);
    handle.close().then(() => callback(error), (closeError: Error) => callback(error ?? closeError));
  }

  /** Writes what the batch holds, after the write in flight. */
  #flush(): Promise<void> {
    clearTimeout(this.#timer);
    this.#timer = undefined;
    const chunks = this.#batch;
    this.#batch = [];
    this.#batchLength = 0;
    this.#writing = this.#writing.then(() => this.#write(chunks));
    return this.#writing;
  }

  /** A short write (the disk filling up) writes the rest, which then fails with ENOSPC. */
  async #write(batch: Buffer[]): Promise<void> {
    let chunks = batch;
    const handle = this.#handle;
    // Only a write queued behind one that failed gets here after the stream was destroyed.
    if (!handle) throw new Error(`${this.#path} was closed before the write`);
    while (chunks.length > 0) {
      const { bytesWritten } = await handle.writev(chunks, this.#options.start + this.bytesWritten);
      this.bytesWritten += bytesWritten;
      chunks = after(chunks, bytesWritten);
    }

  }
}

/** The chunks less their first `bytes` bytes. */
export function after(chunks: readonly Buffer[], bytes: number): Buffer[] {
  const rest: Buffer[] = [];
  let skip = bytes;
  for (const chunk of chunks) {
    if (skip >= chunk.length) {
      skip -= chunk.length;
      continue;
    }
    rest.push(skip > 0 ? chunk.subarray(skip) : chunk);
    skip = 0;
  }
  return rest;
}
