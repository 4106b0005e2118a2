/**
 * `<stateDir>/hub-requests.jsonl`: one JSON line per request to the Hub, the CDN or the recorder.
 * Tests read it to count bytes served, to see which ranges were asked for, and to prove the
 * token never went to the CDN. It never holds the token or the query string (the CDN's signed
 * query is a credential too), only whether `Authorization` was present.
 */
import { appendFileSync } from "node:fs";

export type LogOrigin = "hub" | "cdn" | "recorder";

export interface RequestLogEntry {
  readonly time: string;
  readonly origin: LogOrigin;
  readonly method: string;
  /** Request path as received (still percent-encoded), without the query. */
  readonly path: string;
  readonly status: number;
  /** Body bytes written (not headers); less than announced when a fault cut the body. */
  readonly bytesSent: number;
  /** The `Range` request header, verbatim. */
  readonly range: string | null;
  readonly authorization: boolean;
  /** The `User-Agent` request header, verbatim (null when none was sent). */
  readonly userAgent: string | null;
  readonly requestId: string;
  /** The repo file the request was about (resolve, raw, CDN blob), when known. */
  readonly file?: string;
  /** The scenario rule applied, e.g. `cutAfterBytes=1000`. */
  readonly fault?: string;
  /** True when the connection closed before the response was complete. */
  readonly aborted?: boolean;
}

export class RequestLog {
  readonly file: string;

  constructor(file: string) {
    this.file = file;
  }

  /**
   * Synchronous on purpose: lines stay in completion order and O_APPEND keeps them whole. A line
   * is written when the server side of the response closes, which can be a moment after the
   * client has read the body: readers should poll briefly for the line they expect.
   */
  append(entry: RequestLogEntry): void {
    appendFileSync(this.file, JSON.stringify(entry) + "\n");
  }
}
