/**
 * The "CDN" origin that LFS resolves redirect to, on its own port so that it is a different
 * origin from the Hub (a client must not forward the Hub token there; undici drops it on a
 * cross-origin redirect). URLs are S3-style presigned: the CDN checks the signature and the
 * expiry, never `Authorization`, and the request log records whether one was sent anyway.
 */
import { createHash, createHmac, randomBytes, timingSafeEqual } from "node:crypto";
import type { RepoFile, RepoStore } from "./repo-fixture.ts";
import { contentDisposition, createLoggedServer, fileSource, sendBody, sendRuleStatus, serveBytes, type RequestContext } from "./http-util.ts";
import type { RequestLog } from "./request-log.ts";
import type { ScenarioState } from "./scenario.ts";
import type { Server } from "node:http";

/** How long a presigned URL stays valid (the Hub's are valid for about an hour too). */
export const CDN_URL_TTL_SECONDS = 3600;

/** Blobs never change (they are named by their sha256); any fixed date will do. */
const BLOB_LAST_MODIFIED = new Date("2024-04-18T16:28:13Z").toUTCString();

/** `20240418T162813Z`, the X-Amz-Date format. */
function amzDate(date: Date): string {
  return date.toISOString().replace(/[-:]/g, "").replace(/\.\d{3}/, "");
}

function parseAmzDate(text: string): number {
  const m = /^(\d{4})(\d{2})(\d{2})T(\d{2})(\d{2})(\d{2})Z$/.exec(text);
  return m ? Date.UTC(Number(m[1]), Number(m[2]) - 1, Number(m[3]), Number(m[4]), Number(m[5]), Number(m[6])) : Number.NaN;
}

export function repoHash(repoId: string): string {
  return createHash("sha256").update(repoId).digest("hex");
}

/** Makes and checks presigned CDN URLs. The secret lives only in this process. */
export class CdnSigner {
  readonly #secret = randomBytes(32);

  #signature(path: string, date: string, expires: string, disposition: string): string {
    return createHmac("sha256", this.#secret).update(`${path}\n${date}\n${expires}\n${disposition}`).digest("hex");
  }

  /** `<cdnUrl>/repos/<h[0:2]>/<h[2:4]>/<repo hash>/<sha256>?X-Amz-...&X-Amz-Signature=...` */
  signedUrl(cdnUrl: string, repoId: string, file: RepoFile, now = new Date()): string {
    const hash = repoHash(repoId);
    const path = `/repos/${hash.slice(0, 2)}/${hash.slice(2, 4)}/${hash}/${file.sha256}`;
    const date = amzDate(now);
    const expires = String(CDN_URL_TTL_SECONDS);
    const disposition = contentDisposition(file.path);
    const query = new URLSearchParams({
      "response-content-disposition": disposition,
      "X-Amz-Algorithm": "AWS4-HMAC-SHA256",
      "X-Amz-Content-Sha256": "UNSIGNED-PAYLOAD",
      "X-Amz-Credential": `AKIAWORLDSTANDIN0000/${date.slice(0, 8)}/us-east-1/s3/aws4_request`,
      "X-Amz-Date": date,
      "X-Amz-Expires": expires,
      "X-Amz-Signature": this.#signature(path, date, expires, disposition),
      "X-Amz-SignedHeaders": "host",
      "x-id": "GetObject",
    });
    return `${cdnUrl}${path}?${query.toString()}`;
  }

  /** Why the URL is refused, or `null` when it is valid now. */
  refusal(path: string, query: URLSearchParams, now = Date.now()): string | null {
    const date = query.get("X-Amz-Date") ?? "";
    const expires = query.get("X-Amz-Expires") ?? "";
    const signature = query.get("X-Amz-Signature") ?? "";
    const disposition = query.get("response-content-disposition") ?? "";
    const expected = Buffer.from(this.#signature(path, date, expires, disposition), "utf8");
    const given = Buffer.from(signature, "utf8");
    if (given.length !== expected.length || !timingSafeEqual(given, expected)) {
      return "The request signature we calculated does not match the signature you provided.";
    }
    if (!(now < parseAmzDate(date) + Number(expires) * 1000)) return "Request has expired";
    return null;
  }
}

/** S3 answers errors in XML; clients only need the status, the code helps a human reading a log. */
function sendS3Error(ctx: RequestContext, status: number, code: string, message: string): void {
  const xml = `<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>${code}</Code><Message>${message}</Message></Error>`;
  sendBody(ctx, status, Buffer.from(xml, "utf8"), { "Content-Type": "application/xml" });
}

export interface CdnDeps {
  readonly store: RepoStore;
  readonly scenario: ScenarioState;
  readonly signer: CdnSigner;
  readonly log: RequestLog;
}

export function createCdnServer(deps: CdnDeps): Server {
  return createLoggedServer("cdn", deps.log, async (ctx) => {
    const { req, res } = ctx;
    if (req.method !== "GET" && req.method !== "HEAD") {
      res.setHeader("Allow", "GET, HEAD");
      return sendS3Error(ctx, 405, "MethodNotAllowed", "The specified method is not allowed against this resource.");
    }
    const match = /^\/repos\/[0-9a-f]{2}\/[0-9a-f]{2}\/([0-9a-f]{64})\/([0-9a-f]{64})$/.exec(ctx.rawPath);
    const repoId = match && deps.store.repoIds().find((id) => repoHash(id) === match[1]);
    const blob = match?.[2] !== undefined && repoId ? deps.store.blob(match[2], repoId) : undefined;
    if (!match || !blob) {
      return sendS3Error(ctx, 404, "NoSuchKey", "The specified key does not exist.");
    }
    ctx.file = blob.file.path;
    const refusal = deps.signer.refusal(ctx.rawPath, ctx.query);
    if (refusal) return sendS3Error(ctx, 403, "AccessDenied", refusal);

    const facts = { origin: "cdn" as const, path: ctx.rawPath, file: blob.file.path };
    const statusRule = deps.scenario.takeStatus(facts);
    if (statusRule) return sendRuleStatus(ctx, statusRule);

    await serveBytes(ctx, deps.scenario, facts, fileSource(blob.path, blob.file.size), `"${blob.file.sha256}"`, {
      "Content-Type": "application/octet-stream",
      "Content-Disposition": ctx.query.get("response-content-disposition") ?? "inline",
      "Cache-Control": "public, max-age=604800, immutable",
      "Last-Modified": BLOB_LAST_MODIFIED,
      // CloudFront's header. @huggingface/hub's fileDownloadInfo keys on " cloudfront" to use the
      // CDN URL directly (and then sends Authorization to it), so the world keeps that behaviour.
      "X-Cache": "Miss from cloudfront",
    });
  });
}
