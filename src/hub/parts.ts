import { createReadStream } from "node:fs";
import { open, readFile, rm } from "node:fs/promises";
import type { Readable, Writable } from "node:stream";
import { writeFileAtomic } from "../common/atomic-file.ts";
import { FailedError } from "../common/errors.ts";
import { BatchedFileWriter, writeBatchBytes } from "./file-writer.ts";
import type { HttpAnswer } from "./http.ts";

/**
 * A large file fetched as several byte ranges at once, each written at its own offset of one
 * partial file, so that a single big shard (the last one left, or a model in one file) still
 * fills the link. Progress lives in a sidecar `<partial>.parts`, written atomically as bytes land
 * on disk: a killed run is continued range by range, losing at most the unrecorded tail of each.
 */

/** Ranges of this size (128 MiB); a file gets ranges only when it makes at least two. */
export const defaultPartBytes = 128 * 1024 * 1024;
/** A range records its progress (bytes on disk) every this much of its length (16 MiB of 128), and at its end. */
const recordsPerRange = 8;

export interface Range {
  readonly start: number;
  /** Exclusive. */
  readonly end: number;
}

export function splitIntoRanges(size: number, partBytes: number): Range[] | undefined {
  if (partBytes <= 0 || size < 2 * partBytes) return undefined;
  const ranges: Range[] = [];
  for (let start = 0; start < size; start += partBytes) ranges.push({ start, end: Math.min(size, start + partBytes) });
  return ranges;
}

/** The sidecar: for each range, how many of its bytes are on disk. */
export interface PartsRecord {
  readonly size: number;
  readonly partBytes: number;
  readonly done: number[];
}

export function sidecarOf(partial: string): string {
  return `${partial}.parts`;
}

export async function readParts(partial: string, size: number, partBytes: number): Promise<PartsRecord | undefined> {
  try {
    const record = JSON.parse(await readFile(sidecarOf(partial), "utf8")) as PartsRecord;
    const ranges = splitIntoRanges(size, partBytes);
    // A sidecar for another size or split cannot be trusted byte for byte.
    if (record.size !== size || record.partBytes !== partBytes || !ranges || record.done.length !== ranges.length) return undefined;
    if (record.done.some((d, i) => !Number.isInteger(d) || d < 0 || d > (ranges[i] as Range).end - (ranges[i] as Range).start)) return undefined;
    return record;
  } catch {
    return undefined;
  }
}

/**
 * Starts a ranged partial: the full length (sparse) and a sidecar with nothing done yet. With
 * `keepPrefix` the bytes already in the file stay (the caller records them as done).
 */
export async function startParts(partial: string, size: number, partBytes: number, keepPrefix = false): Promise<PartsRecord> {
  const handle = await open(partial, keepPrefix ? "r+" : "w", 0o644);
  try {
    await handle.truncate(size);
  } finally {
    await handle.close();
  }
  const ranges = splitIntoRanges(size, partBytes) as Range[];
  const record = { size, partBytes, done: ranges.map(() => 0) };
  await writeFileAtomic(sidecarOf(partial), JSON.stringify(record));
  return record;
}

/**
 * The ranges of one partial save the one record they share one after another, each writing it as
 * it is when its turn comes: side by side, an older copy could be renamed into place last.
 */
const lastSave = new WeakMap<PartsRecord, Promise<unknown>>();

function saveRecord(partial: string, record: PartsRecord): Promise<void> {
  const write = (lastSave.get(record) ?? Promise.resolve()).then(() => writeFileAtomic(sidecarOf(partial), JSON.stringify(record)));
  // The queue goes on after a failed write; the caller sees the failure.
  lastSave.set(record, write.catch(() => {}));
  return write;
}

export async function removeParts(partial: string): Promise<void> {
  await rm(sidecarOf(partial), { force: true });
}

/** The server answered a ranged request with the whole file: ranges cannot work with it. */
export class RangesUnsupported extends Error {}
/** A range transfer ended early or its connection dropped; the record holds what landed. */
export class RangeCut extends Error {}
/** The server's copy has another length than the listing says (`actual`, when it told). */
export class SizeMismatch extends Error {
  readonly actual: number | undefined;
  constructor(actual: number | undefined) {
    // Internal: the downloader turns it into the consistency error the user sees.
    super();
    this.actual = actual;
  }
}

/** The total length in a `Content-Range: bytes a-b/total` header, if the answer has one. */
export function contentRangeTotal(response: HttpAnswer): number | undefined {
  const total = /\/(\d+)$/.exec(response.header("content-range") ?? "")?.[1];
  return total === undefined ? undefined : Number(total);
}

/**
 * Fetches what is left of range `index` into the partial at its offset. `open` makes the request
 * (with the token rules and retries of the caller's client). Updates `record.done[index]` from
 * the bytes the file stream really wrote, and saves the sidecar as it goes.
 */
export async function fetchRange(
  partial: string,
  record: PartsRecord,
  index: number,
  open: (headers: Record<string, string>) => Promise<HttpAnswer>,
  onBytes: (bytes: number) => void,
): Promise<void> {
  const ranges = splitIntoRanges(record.size, record.partBytes) as Range[];
  const range = ranges[index] as Range;
  const from = range.start + (record.done[index] as number);
  const response = await open({ range: `bytes=${from}-${range.end - 1}` });
  const total = contentRangeTotal(response);
  // Either answer may be a whole file: dropped unread, never drained to be thrown away.
  if (total !== undefined && total !== record.size) {
    response.body.destroy();
    throw new SizeMismatch(total);
  }
  if (response.status !== 206 || !response.header("content-range")?.startsWith(`bytes ${from}-${range.end - 1}/`)) {
    response.body.destroy();
    throw new RangesUnsupported();
  }
  let recorded = 0;
  const save = async (written: number) => {
    record.done[index] = from - range.start + written;
    recorded = written;
    await saveRecord(partial, record);
  };
  let received = 0;
  const out = new BatchedFileWriter(partial, {
    flags: "r+",
    start: from,
    // Batches no larger than a record step, so the record keeps up with what lands.
    batchBytes: Math.max(1, Math.min(writeBatchBytes, Math.floor(record.partBytes / recordsPerRange))),
    admit: (chunk, written) => {
      received += chunk.length;
      if (from + received > range.end) throw new FailedError("the server sent more than the range asked for");
      onBytes(chunk.length);
      // Record now and then what has certainly reached the file.
      if (written - recorded >= record.partBytes / recordsPerRange) return save(written).then(() => true);
      return true;
    },
  });
  try {
    await writeWhatArrives(response.body, out);
  } finally {
    await save(out.bytesWritten);
  }
  if (from + received < range.end) throw new RangeCut();
}

/**
 * Pipes an answer's body into the file stream `out`, and resolves once the file stream has
 * written all of it. A body that fails (a cut connection) ends the file stream rather than
 * destroying it, so every byte that arrived is in the file before the caller counts. Rejects when
 * the file stream fails (ENOSPC, a chunk it refused), and then drops the body.
 */
export function writeWhatArrives(body: Readable, out: Writable): Promise<void> {
  return new Promise((resolve, reject) => {
    const fail = (error: unknown) => {
      body.destroy();
      out.destroy();
      reject(error);
    };
    // A cut body errors, then closes: pipe() leaves `out` open then, so end it here. After a
    // complete body pipe() has ended it already, and a second end() does nothing.
    body.on("error", () => {});
    body.once("close", () => out.end());
    out.once("finish", () => resolve());
    out.on("error", fail);
    body.pipe(out);
  });
}

/** The hash of the whole partial, read back once every range is in. */
export async function hashFile(path: string, hash: import("node:crypto").Hash): Promise<string> {
  for await (const chunk of createReadStream(path, { highWaterMark: 1024 * 1024 })) hash.update(chunk as Buffer);
  return hash.digest("hex");
}
