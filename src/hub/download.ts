import { createHash, randomBytes } from "node:crypto";
import { chmod, mkdir, open, readdir, readlink, rename, rm, stat, symlink, writeFile } from "node:fs/promises";
import { hostname } from "node:os";
import { basename, dirname, join } from "node:path";
import { writeFileAtomic } from "../common/atomic-file.ts";
import { FailedError, InterruptedError } from "../common/errors.ts";
import { formatBytes } from "../common/format.ts";
import { isAlive } from "../pipeline/lock.ts";
import { Semaphore } from "../common/semaphore.ts";
import { testHashStepBytes, testPartBytes } from "../common/test-hooks.ts";
import { type FileHash, HashThread, hashStepBytes } from "./file-hash.ts";
import { BatchedFileWriter, writeBatchBytes } from "./file-writer.ts";
import { blobLinkTarget, blobPath, refPath, refuseUnsafeListing, repoFolder, snapshotDir } from "./cache.ts";
import {
  defaultPartBytes,
  fetchRange,
  hashFile,
  type PartsRecord,
  type Range,
  RangeCut,
  contentRangeTotal,
  RangesUnsupported,
  readParts,
  SizeMismatch,
  removeParts,
  sidecarOf,
  splitIntoRanges,
  startParts,
  writeWhatArrives,
} from "./parts.ts";
import { type Hub, type RepoFile, retryDelayMs, type Sleep, sleep } from "./hub-client.ts";
import { HubError } from "./hub-errors.ts";
import type { HttpAnswer } from "./http.ts";

export interface DownloadRequest {
  readonly repo: string;
  readonly revision: string;
  readonly commit: string;
  readonly files: readonly RepoFile[];
  readonly cacheDir: string;
  readonly signal: AbortSignal;
  readonly onBytes: (bytes: number) => void;
  readonly onFileDone: (file: RepoFile, downloaded: boolean) => void;
  readonly warn: (message: string) => void;
  /** How to wait before a retry; default the real clock (tests record the delays instead). */
  readonly sleep?: Sleep;
}

/** Files in progress at once. */
export const concurrentFiles = 4;
/**
 * Connections at once, over all files: enough to fill a link with the Hub's few large shards
 * (split into ranges), few enough to be polite to it.
 */
export const maxConnections = 8;
/** Tries of one file without a single new byte before giving up (huggingface_hub: 5). */
const maxAttemptsWithoutProgress = 5;

/**
 * Whose partial file this is: `<host>-<pid>-<random>`. A partial whose process is gone (same host,
 * dead pid) may be continued by a later run; one whose owner lives is never touched, so two
 * downloads into one cache each write their own file (huggingface_hub #4306, reliability case 16).
 */
export function partialOwner(): string {
  return `${hostTag()}-${process.pid}-${Math.random().toString(36).slice(2, 8)}`;
}

/** This host's name as it can stand in a file name (and in partialPattern's host group). */
function hostTag(): string {
  return hostname().replace(/[^A-Za-z0-9_-]/g, "_");
}

const partialPattern = /^(?<oid>[0-9a-f]{40}|[0-9a-f]{64})\.(?<host>[A-Za-z0-9_-]+)-(?<pid>\d+)-[a-z0-9]+\.incomplete$/;

/** Bytes still to fetch: files whose blob is not in the cache with the right size, less resumable partials. */
export async function missingBytes(req: Pick<DownloadRequest, "repo" | "files" | "cacheDir">): Promise<number> {
  let total = 0;
  for (const file of req.files) {
    if (await blobComplete(req.cacheDir, req.repo, file)) continue;
    total += file.size - (await resumableBytes(req.cacheDir, req.repo, file));
  }
  return total;
}

async function blobComplete(cacheDir: string, repo: string, file: RepoFile): Promise<boolean> {
  try {
    return (await stat(blobPath(cacheDir, repo, file.oid))).size === file.size;
  } catch {
    return false;
  }
}

/** Partial files of this blob left by processes that are gone, largest first. */
async function deadPartials(cacheDir: string, repo: string, file: RepoFile): Promise<{ path: string; size: number }[]> {
  const blobs = join(repoFolder(cacheDir, repo), "blobs");
  const names = await readdir(blobs).catch(() => [] as string[]);
  const found: { path: string; size: number }[] = [];
  for (const name of names) {
    const m = partialPattern.exec(name);
    if (!m?.groups || m.groups.oid !== file.oid) continue;
    if (m.groups.host !== hostTag() || isAlive(Number(m.groups.pid))) continue;
    const size = await stat(join(blobs, name)).then((s) => s.size, () => -1);
    if (size >= 0) found.push({ path: join(blobs, name), size });
  }
  return found.sort((a, b) => b.size - a.size);
}

async function resumableBytes(cacheDir: string, repo: string, file: RepoFile): Promise<number> {
  const best = (await deadPartials(cacheDir, repo, file)).find((p) => p.size <= file.size);
  if (!best) return 0;
  // A file fetched in ranges is full length from the start: its sidecar says what is really there,
  // and one that does not fit means holes, so nothing (as startFromPrefix decides).
  const parts = await readParts(best.path, file.size, partBytes());
  if (parts) return parts.done.reduce((n, d) => n + d, 0);
  return (await exists(sidecarOf(best.path))) ? 0 : best.size;
}

function partBytes(): number {
  return testPartBytes() ?? defaultPartBytes;
}

/**
 * Puts every file into the cache: blob (checked for size and hash before it gets its final
 * name), snapshot link, and `refs/<revision>`. A blob already there costs nothing; a partial one
 * left by a killed run is continued with HTTP Range.
 */
export async function downloadToCache(client: Hub, req: DownloadRequest): Promise<void> {
  refuseUnsafeListing(req.repo, req.commit, req.files);
  const shared: Shared = { owner: partialOwner(), connections: new Semaphore(maxConnections), hashes: new HashThread(testHashStepBytes() ?? hashStepBytes) };
  const queue = [...req.files].sort((a, b) => b.size - a.size);
  // The first failure, reported once the files already begun have ended: they are published if
  // true (nothing half-done is left of them), and no other file starts.
  let failure: { error: unknown } | undefined;
  const worker = async () => {
    for (let file = queue.shift(); file; file = queue.shift()) {
      try {
        let downloaded = false;
        if (!(await blobComplete(req.cacheDir, req.repo, file))) {
          await fetchVerified(client, req, file, shared);
          downloaded = true;
        }
        await linkSnapshot(req, file);
        req.onFileDone(file, downloaded);
      } catch (error) {
        failure ??= { error };
        queue.length = 0;
      }
    }
  };
  try {
    await Promise.all(Array.from({ length: Math.min(concurrentFiles, queue.length) }, worker));
  } finally {
    await shared.hashes.close();
  }
  if (failure) throw failure.error;
  if (req.revision !== req.commit) {
    await mkdir(dirname(refPath(req.cacheDir, req.repo, req.revision)), { recursive: true });
    // No trailing newline: huggingface_hub writes the bare commit.
    await writeFileAtomic(refPath(req.cacheDir, req.repo, req.revision), req.commit);
  }
}

/** What the files of one download share. */
interface Shared {
  /** Whose partial files these are (partialOwner). */
  readonly owner: string;
  readonly connections: Semaphore;
  /** The thread that hashes every file as it lands. */
  readonly hashes: HashThread;
}

/** A wrong hash gets one fresh download (a flipped bit in transit); a second wrong hash is an error. */
async function fetchVerified(client: Hub, req: DownloadRequest, file: RepoFile, shared: Shared): Promise<void> {
  const kind = file.lfs ? "sha256" : "git sha1";
  const first = await fetchBlob(client, req, file, shared);
  if (!first) return;
  req.warn(`${file.path}: ${kind} mismatch (got ${first.slice(0, 12)}), downloading it again`);
  const second = await fetchBlob(client, req, file, shared);
  if (!second) return;
  throw new FailedError(
    `${file.path} is corrupt twice over: expected ${kind} ${file.oid}, got ${second} ` +
      `(from ${new URL(client.hub.endpoint).host}). Nothing was saved; try again later, or check a proxy between you and the Hub.`,
  );
}

/**
 * Downloads one blob into `<oid>.<owner>.incomplete`, continuing a dead run's partial if there is
 * one, retrying a cut transfer from the bytes it has, and renames it to `blobs/<oid>` only once
 * size and hash are right. Returns the wrong digest on a hash mismatch (the partial is deleted).
 */
async function fetchBlob(client: Hub, req: DownloadRequest, file: RepoFile, shared: Shared): Promise<string | undefined> {
  const target = blobPath(req.cacheDir, req.repo, file.oid);
  const partial = `${target}.${shared.owner}.incomplete`;
  await mkdir(dirname(target), { recursive: true });
  await adoptDeadPartial(req, file, partial);
  if (splitIntoRanges(file.size, partBytes())) {
    const result = await fetchInRanges(client, req, file, partial, shared);
    if (result !== "ranges-unsupported") return result;
  }

  // An adopted partial's bytes are hashed once the first transfer tells the thread they are there.
  const progress: Progress = { hash: shared.hashes.follow(partial, file), size: await sizeOnDisk(partial) };
  let warnedRange = false;
  let attemptsWithoutProgress = 0;
  try {
    while (progress.size < file.size) {
      const before = progress.size;
      try {
        await shared.connections.use(() =>
          transfer(client, req, file, partial, progress, shared.hashes, () => {
            if (!warnedRange) req.warn(`${file.path}: the server ignored the Range request; starting this file over`);
            warnedRange = true;
          }),
        );
      } catch (error) {
        if (!req.signal.aborted) throw diskFull(error, file, partial, await sizeOnDisk(partial)) ?? error;
      }
      // However the transfer ended, an interrupt keeps what arrived for the next run.
      if (req.signal.aborted) throw new InterruptedError(`interrupted; ${formatBytes(progress.size)} of ${file.path} kept, rerun to resume`);
      if (progress.size === file.size) break;
      attemptsWithoutProgress = progress.size > before ? 0 : attemptsWithoutProgress + 1;
      if (attemptsWithoutProgress >= maxAttemptsWithoutProgress) {
        throw new FailedError(
          `download of ${file.path} failed after ${maxAttemptsWithoutProgress} retries without progress; ` +
            `rerun to resume (${formatBytes(progress.size)} of ${formatBytes(file.size)} kept).`,
        );
      }
      req.warn(`${file.path}: transfer cut at ${formatBytes(progress.size)} of ${formatBytes(file.size)}, resuming`);
      await (req.sleep ?? sleep)(retryDelayMs(attemptsWithoutProgress + 1), req.signal);
    }
    // An empty file never went through a transfer: make it exist before publishing it.
    if (file.size === 0) await writeFile(partial, "");
  } catch (error) {
    progress.hash.drop();
    // A copy of another length is not the listed file: nothing of it is kept. Anything else
    // leaves a good prefix to resume from.
    if (!(error instanceof SizeMismatch)) throw error;
    await rm(partial, { force: true });
    throw consistencyError(client, file, error);
  }
  return publishIfTrue(req, file, partial, await syncedDigest(partial, progress.hash));
}

/** The hash of a complete partial, with its bytes flushed to disk meanwhile. */
async function syncedDigest(partial: string, hash: FileHash): Promise<string> {
  const [digest] = await Promise.all([hash.digest(), syncFile(partial)]);
  return digest;
}

/**
 * Gives a complete partial its final name `blobs/<oid>` if its digest is that name; otherwise
 * deletes it (a wrong file never gets a blob's name) and returns the wrong digest.
 */
async function publishIfTrue(req: DownloadRequest, file: RepoFile, partial: string, digest: string): Promise<string | undefined> {
  if (digest !== file.oid) {
    await rm(partial);
    return digest;
  }
  // The cache folder's read and write bits, so a group-shared cache stays shared (S6); never
  // world-writable or executable.
  await chmod(partial, (await stat(req.cacheDir)).mode & 0o664);
  await rename(partial, blobPath(req.cacheDir, req.repo, file.oid));
  return undefined;
}

/** What a partial file holds so far: its length, and the hash that follows those bytes. */
interface Progress {
  hash: FileHash;
  size: number;
}

/**
 * One GET from `progress.size` on, piped into the file at that offset with backpressure, the
 * hashing thread told as the bytes land. When the connection drops, what was received is still
 * written out before the count is taken, so the hash and the file stay in step and the resume
 * loses nothing; the caller sees from `progress` whether the file is complete.
 */
async function transfer(
  client: Hub,
  req: DownloadRequest,
  file: RepoFile,
  partial: string,
  progress: Progress,
  hashes: HashThread,
  onRangeIgnored: () => void,
): Promise<void> {
  const headers: Record<string, string> = progress.size > 0 ? { range: `bytes=${progress.size}-` } : {};
  const response = await client.request(fileUrl(client, req, file), fileWhat(req, file), headers).catch((error: unknown) => {
    // Nothing there from where the last body ended (one without Content-Length): the copy is shorter.
    throw error instanceof HubError && error.status === 416 ? new SizeMismatch(progress.size) : error;
  });
  const announced = announcedSize(response);
  if (announced !== undefined && announced !== file.size) {
    // Dropped unread: it may be a whole (wrong) file.
    response.body.destroy();
    throw new SizeMismatch(announced);
  }
  if (progress.size > 0 && response.status !== 206) {
    // A server that ignores Range sends the whole body: keeping the prefix would double it (H4).
    onRangeIgnored();
    progress.hash.drop();
    progress.hash = hashes.follow(partial, file);
    progress.size = 0;
  }
  const start = progress.size;
  let received = 0;
  let oversized = false;
  const body = response.body;
  const out = new BatchedFileWriter(partial, {
    flags: start === 0 ? "w" : "r+",
    start,
    mode: 0o644,
    // Batches no larger than a hashing step, so the thread is told as often as it asks.
    batchBytes: Math.min(writeBatchBytes, hashes.stepBytes),
    admit: (chunk, written) => {
      // More than promised: stop reading; the caller reports it.
      if (oversized || start + received + chunk.length > file.size) {
        oversized = true;
        body.destroy();
        return false;
      }
      received += chunk.length;
      req.onBytes(chunk.length);
      // What the file stream has written is final.
      progress.hash.advance(start + written);
      return true;
    },
  });
  await writeWhatArrives(body, out);
  // What arrived is in the file by now, whatever ended the transfer.
  progress.size = start + received;
  // Only a body without Content-Length gets here too long.
  if (oversized) throw new SizeMismatch(undefined);
}

/** `resolve` of a file at the commit, each path segment percent-encoded (J8, case 18). */
function fileUrl(client: Hub, req: DownloadRequest, file: RepoFile): string {
  return `${client.hub.endpoint}/${req.repo}/resolve/${req.commit}/${file.path.split("/").map(encodeURIComponent).join("/")}`;
}

/** What a request for the file is about, for the Hub's error messages. */
function fileWhat(req: DownloadRequest, file: RepoFile): { repo: string; revision: string; path: string } {
  return { repo: req.repo, revision: req.commit, path: file.path };
}

/** The file's length as an answer tells it: a 206's Content-Range total, else Content-Length. */
function announcedSize(response: HttpAnswer): number | undefined {
  if (response.status === 206) return contentRangeTotal(response);
  const length = response.header("content-length");
  return length === undefined ? undefined : Number(length);
}

/** huggingface_hub's "Consistency check failed" (H5), with what to do about it. */
function consistencyError(client: Hub, file: RepoFile, mismatch: SizeMismatch): FailedError {
  return new FailedError(
    `Consistency check failed: ${file.path} should be of size ${file.size} but has size ${mismatch.actual ?? `over ${file.size}`} ` +
      `(from ${new URL(client.hub.endpoint).host}). Nothing was saved; rerun to fetch it again. If it happens again, the Hub's ` +
      "listing and the file it serves disagree: check a proxy or mirror between you and the Hub.",
    { cause: mismatch },
  );
}

/** Takes over the largest partial of this blob a dead run left (by rename: atomic), removing the others. */
async function adoptDeadPartial(req: DownloadRequest, file: RepoFile, partial: string): Promise<void> {
  const dead = await deadPartials(req.cacheDir, req.repo, file);
  let adopted = false;
  for (const candidate of dead) {
    if (!adopted && candidate.size <= file.size) {
      try {
        await rename(candidate.path, partial);
        adopted = true;
        // A ranged partial's progress record travels with it.
        await rename(sidecarOf(candidate.path), sidecarOf(partial)).catch(() => {});
        await removeDeadSidecarTemps(candidate.path);
        continue;
      } catch {
        // Someone else took it first: fine, look at the next.
      }
    }
    await rm(candidate.path, { force: true });
    await rm(sidecarOf(candidate.path), { force: true });
    await removeDeadSidecarTemps(candidate.path);
  }
}

/**
 * The temp files of a dead run's progress record (`.<partial>.parts.<random>.tmp`): killed in the
 * middle of an atomic write, it left one. Only that run's (its pid is dead), never a live writer's.
 */
async function removeDeadSidecarTemps(deadPartial: string): Promise<void> {
  const prefix = `.${basename(sidecarOf(deadPartial))}.`;
  const names = await readdir(dirname(deadPartial)).catch(() => [] as string[]);
  await Promise.all(names.filter((n) => n.startsWith(prefix) && n.endsWith(".tmp")).map((n) => rm(join(dirname(deadPartial), n), { force: true })));
}

/**
 * A large file in ranges, several at once, each retried from the bytes it has. The hashing
 * thread follows the ranges done from the start of the file, so little is left to hash once the
 * last is in. Returns the wrong digest on a mismatch, or "ranges-unsupported" when the server
 * ignores Range (the caller then fetches it whole).
 */
async function fetchInRanges(
  client: Hub,
  req: DownloadRequest,
  file: RepoFile,
  partial: string,
  shared: Shared,
): Promise<string | undefined | "ranges-unsupported"> {
  const bytesPerPart = partBytes();
  const ranges = splitIntoRanges(file.size, bytesPerPart) as Range[];
  const record = (await readParts(partial, file.size, bytesPerPart)) ?? (await startFromPrefix(partial, file.size, bytesPerPart));
  const hash = shared.hashes.follow(partial, file);
  const url = fileUrl(client, req, file);
  const what = fileWhat(req, file);
  const kept = () => formatBytes(record.done.reduce((n, d) => n + d, 0));

  const fetchOne = async (index: number) => {
    const range = ranges[index] as Range;
    let attemptsWithoutProgress = 0;
    while ((record.done[index] as number) < range.end - range.start) {
      const before = record.done[index] as number;
      try {
        await shared.connections.use(() => fetchRange(partial, record, index, (headers) => client.request(url, what, headers), req.onBytes));
        continue;
      } catch (error) {
        if (req.signal.aborted) throw error;
        if (!(error instanceof RangeCut)) throw diskFull(error, file, partial, record.done.reduce((n, d) => n + d, 0)) ?? error;
      } finally {
        // However it ended, what the record has is on disk.
        hash.advance(doneFromStart(record));
      }
      attemptsWithoutProgress = (record.done[index] as number) > before ? 0 : attemptsWithoutProgress + 1;
      if (attemptsWithoutProgress >= maxAttemptsWithoutProgress) {
        throw new FailedError(
          `download of ${file.path} failed after ${maxAttemptsWithoutProgress} retries without progress; rerun to resume (${kept()} of ${formatBytes(file.size)} kept).`,
        );
      }
      req.warn(`${file.path}: range ${index + 1} of ${ranges.length} cut, resuming`);
      await (req.sleep ?? sleep)(retryDelayMs(attemptsWithoutProgress + 1), req.signal);
    }
  };
  // Every range settles before anything is decided, so none is still writing into the partial.
  const failed = (await Promise.allSettled(ranges.map((_, index) => fetchOne(index)))).find((r) => r.status === "rejected");
  if (failed) {
    hash.drop();
    const error: unknown = failed.reason;
    // Counted once every range has saved what it has.
    if (req.signal.aborted) throw new InterruptedError(`interrupted; ${kept()} of ${file.path} kept, rerun to resume`, { cause: error });
    if (!(error instanceof RangesUnsupported) && !(error instanceof SizeMismatch)) throw error;
    await removeParts(partial);
    await rm(partial);
    if (error instanceof SizeMismatch) throw consistencyError(client, file, error);
    req.warn(`${file.path}: the server does not serve byte ranges; fetching it whole`);
    return "ranges-unsupported";
  }
  const digest = await syncedDigest(partial, hash);
  await removeParts(partial);
  return publishIfTrue(req, file, partial, digest);
}

/** Bytes on record from the start of the file without a gap: what may be hashed so far. */
function doneFromStart(record: PartsRecord): number {
  let bytes = 0;
  for (const done of record.done) {
    bytes += done;
    if (done < record.partBytes) break;
  }
  return bytes;
}

/** Begins a ranged download, keeping the prefix a whole-file download (or a dead run) left. */
async function startFromPrefix(partial: string, size: number, bytesPerPart: number): Promise<PartsRecord> {
  // A sidecar that did not fit means a ranged file with holes: nothing in it can be trusted.
  const prefix = (await exists(sidecarOf(partial))) ? 0 : await sizeOnDisk(partial);
  const record = await startParts(partial, size, bytesPerPart, prefix > 0);
  const ranges = splitIntoRanges(size, bytesPerPart) as Range[];
  ranges.forEach((r, i) => (record.done[i] = Math.max(0, Math.min(prefix, r.end) - r.start)));
  return record;
}

/**
 * Whether a cached file still has the content its name promises: sha256 for LFS blobs, the git
 * blob sha1 otherwise. Reads every byte (`build --verify`; reliability case 7b).
 */
export async function contentMatches(path: string, oid: string, size: number): Promise<boolean> {
  const hash = oid.length === 64 ? createHash("sha256") : createHash("sha1").update(`blob ${size}\0`);
  return (await hashFile(path, hash)) === oid;
}

/** fsync before the rename that publishes it: a blob's name must never point at lost bytes. */
async function syncFile(path: string): Promise<void> {
  const handle = await open(path, "r+");
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
}

function exists(path: string): Promise<boolean> {
  return stat(path).then(() => true, () => false);
}

async function sizeOnDisk(path: string): Promise<number> {
  return stat(path).then((s) => s.size, () => 0);
}

function diskFull(error: unknown, file: RepoFile, partial: string, size: number): FailedError | undefined {
  if ((error as NodeJS.ErrnoException).code !== "ENOSPC") return undefined;
  return new FailedError(
    `disk full while writing ${file.path} into ${dirname(partial)} (ENOSPC). Free some space and rerun to resume ` +
      `(${formatBytes(size)} of ${formatBytes(file.size)} kept).`,
    { cause: error },
  );
}

async function linkSnapshot(req: DownloadRequest, file: RepoFile): Promise<void> {
  const link = join(snapshotDir(req.cacheDir, req.repo, req.commit), file.path);
  const target = blobLinkTarget(file.path, file.oid);
  await mkdir(dirname(link), { recursive: true });
  if ((await readlink(link).catch(() => undefined)) === target) return;
  // Made aside and renamed over whatever is there (a copy, a wrong link): another download
  // linking the same file at the same moment (case 16) or a reader never meets a missing entry.
  const temp = `${link}.${randomBytes(6).toString("hex")}.tmp`;
  await symlink(target, temp);
  try {
    await rename(temp, link);
  } catch (error) {
    await rm(temp);
    throw error;
  }
}
