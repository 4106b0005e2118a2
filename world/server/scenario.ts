/**
 * Fault knobs for tests, set with `POST /_world/scenario` (JSON, replaces the whole scenario),
 * read with `GET /_world/scenario` (with the uses left per rule) and cleared with
 * `DELETE /_world/scenario`.
 *
 * Example: `{ "rules": [{ "match": "*.safetensors", "origin": "cdn", "cutAfterBytes": 1000, "times": 3 }] }`
 *
 * A rule matches a request when its `origin` (if given) is the request's and its `match` glob
 * matches either the request path as received, percent-encoded (`/api/models/org/name/tree/main`),
 * or the decoded repo file the request is about (`model-00001-of-00004.safetensors`, also for
 * CDN blobs). For each request
 * the first matching rule that has uses left and would change the response is applied, and
 * spends one use. Status rules are checked before anything else (auth, routing to files);
 * body rules only when a file body is served (resolve/raw of a regular file, CDN blob).
 */
import { globToRegExp } from "./glob.ts";

export type Origin = "hub" | "cdn";

export interface FaultRule {
  /** Glob over the request path or the repo file path (`**` crosses `/`); default: everything. */
  readonly match?: string;
  /** Only requests to this origin; default: both. */
  readonly origin?: Origin;
  /** How many requests the rule applies to; default: all of them, forever. */
  readonly times?: number;
  /** Answer with this status and a JSON error body instead of serving (503, 429, 500 ...). */
  readonly status?: number;
  /** With `status`: send `Retry-After: <seconds>`. */
  readonly retryAfterSeconds?: number;
  /** Ignore the request's `Range`: answer 200 with the full body. */
  readonly ignoreRange?: boolean;
  /** Close the connection after this many body bytes (the headers promised more). */
  readonly cutAfterBytes?: number;
  /** Serve the right length with one byte flipped (the file's middle byte if served, else the first). */
  readonly wrongBytes?: boolean;
  /** Cap the body rate at this many bytes per second. */
  readonly bytesPerSecond?: number;
  /**
   * Serve the file as if it were this many bytes longer (zeros appended) or shorter (its end cut
   * off), with Content-Length, Content-Range and Range handling all consistent with that size,
   * while listings and `X-Linked-Size` keep reporting the real one (reliability case 8).
   */
  readonly sizeDelta?: number;
  /** Send the body without Content-Length (chunked), as some proxies do: its end is its length. */
  readonly chunked?: boolean;
}

/**
 * An entry injected into tree listings, paths-info and model-info siblings (hostile or awkward).
 * One with the path of a fixture file replaces that file.
 */
export interface ExtraEntry {
  /** Used verbatim, never validated: `../../x` and `C:\\x` are the point. */
  readonly path: string;
  /** Default `file`. */
  readonly type?: "file" | "directory";
  /** When given (and no `lfs`), resolve/raw serve it as a regular file; else listing-only. */
  readonly content?: string;
  /** Reported git oid; default: the git sha1 of `content`. */
  readonly oid?: string;
  /** Reported size; default: the byte length of `content`. */
  readonly size?: number;
  /** Report the entry as an LFS file with this (possibly hostile) oid. */
  readonly lfs?: { readonly oid: string; readonly size: number; readonly pointerSize?: number };
}

export interface Scenario {
  /** Fault rules, first match wins. */
  readonly rules: readonly FaultRule[];
  /** `main` (and `HEAD`) point to each repo's second commit: shard 4 changed, USE_POLICY.md added. */
  readonly mainMoved: boolean;
  /** Entries appended to every repo's listings. */
  readonly extraEntries: readonly ExtraEntry[];
  /** Commit id reported by model info `sha` and `X-Repo-Commit` instead of the real one (e.g. `../x`). */
  readonly commitSha?: string;
}

export const EMPTY_SCENARIO: Scenario = { rules: [], mainMoved: false, extraEntries: [] };

export class ScenarioError extends Error {}

type Json = Record<string, unknown>;

function isObject(value: unknown): value is Json {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

function checkKeys(where: string, value: Json, allowed: readonly string[]): void {
  for (const key of Object.keys(value)) {
    if (!allowed.includes(key)) throw new ScenarioError(`${where}: unknown key "${key}" (allowed: ${allowed.join(", ")})`);
  }
}

function optional<T>(where: string, value: unknown, check: (v: unknown) => v is T, expected: string): T | undefined {
  if (value === undefined) return undefined;
  if (!check(value)) throw new ScenarioError(`${where}: expected ${expected}, got ${JSON.stringify(value)}`);
  return value;
}

const isString = (v: unknown): v is string => typeof v === "string";
const isBoolean = (v: unknown): v is boolean => typeof v === "boolean";
const isCount = (v: unknown): v is number => typeof v === "number" && Number.isInteger(v) && v >= 0;
const isPositive = (v: unknown): v is number => typeof v === "number" && Number.isFinite(v) && v > 0;
const isNonZeroInteger = (v: unknown): v is number => typeof v === "number" && Number.isInteger(v) && v !== 0;
const isStatus = (v: unknown): v is number => typeof v === "number" && Number.isInteger(v) && v >= 400 && v <= 599;
const isOrigin = (v: unknown): v is Origin => v === "hub" || v === "cdn";

function parseRule(where: string, value: unknown): FaultRule {
  if (!isObject(value)) throw new ScenarioError(`${where}: expected an object`);
  checkKeys(where, value, [
    "match",
    "origin",
    "times",
    "status",
    "retryAfterSeconds",
    "ignoreRange",
    "cutAfterBytes",
    "wrongBytes",
    "bytesPerSecond",
    "sizeDelta",
    "chunked",
  ]);
  const rule: FaultRule = {
    match: optional(`${where}.match`, value.match, isString, "a glob string"),
    origin: optional(`${where}.origin`, value.origin, isOrigin, '"hub" or "cdn"'),
    times: optional(`${where}.times`, value.times, isCount, "a count"),
    status: optional(`${where}.status`, value.status, isStatus, "an HTTP error status (400-599)"),
    retryAfterSeconds: optional(`${where}.retryAfterSeconds`, value.retryAfterSeconds, isCount, "whole seconds"),
    ignoreRange: optional(`${where}.ignoreRange`, value.ignoreRange, isBoolean, "a boolean"),
    cutAfterBytes: optional(`${where}.cutAfterBytes`, value.cutAfterBytes, isCount, "a byte count"),
    wrongBytes: optional(`${where}.wrongBytes`, value.wrongBytes, isBoolean, "a boolean"),
    bytesPerSecond: optional(`${where}.bytesPerSecond`, value.bytesPerSecond, isPositive, "a positive number"),
    sizeDelta: optional(`${where}.sizeDelta`, value.sizeDelta, isNonZeroInteger, "a non-zero whole number of bytes"),
    chunked: optional(`${where}.chunked`, value.chunked, isBoolean, "a boolean"),
  };
  const bodyEffect =
    rule.ignoreRange ||
    rule.cutAfterBytes !== undefined ||
    rule.wrongBytes ||
    rule.bytesPerSecond !== undefined ||
    rule.sizeDelta !== undefined ||
    rule.chunked;
  // A status answer has no file body, so mixing would silently drop the body effects.
  if (rule.status !== undefined && bodyEffect) throw new ScenarioError(`${where}: "status" cannot be combined with body effects`);
  if (rule.status === undefined && !bodyEffect) throw new ScenarioError(`${where}: the rule has no effect`);
  if (rule.retryAfterSeconds !== undefined && rule.status === undefined) {
    throw new ScenarioError(`${where}: "retryAfterSeconds" needs "status"`);
  }
  return rule;
}

function parseExtraEntry(where: string, value: unknown): ExtraEntry {
  if (!isObject(value)) throw new ScenarioError(`${where}: expected an object`);
  checkKeys(where, value, ["path", "type", "content", "oid", "size", "lfs"]);
  const path = optional(`${where}.path`, value.path, isString, "a string");
  if (path === undefined) throw new ScenarioError(`${where}.path: required`);
  const type = optional(`${where}.type`, value.type, (v): v is "file" | "directory" => v === "file" || v === "directory", '"file" or "directory"');
  let lfs: ExtraEntry["lfs"];
  if (value.lfs !== undefined) {
    if (!isObject(value.lfs)) throw new ScenarioError(`${where}.lfs: expected an object`);
    checkKeys(`${where}.lfs`, value.lfs, ["oid", "size", "pointerSize"]);
    const oid = optional(`${where}.lfs.oid`, value.lfs.oid, isString, "a string");
    const size = optional(`${where}.lfs.size`, value.lfs.size, isCount, "a byte count");
    if (oid === undefined || size === undefined) throw new ScenarioError(`${where}.lfs: "oid" and "size" are required`);
    lfs = { oid, size, pointerSize: optional(`${where}.lfs.pointerSize`, value.lfs.pointerSize, isCount, "a byte count") };
  }
  return {
    path,
    type,
    content: optional(`${where}.content`, value.content, isString, "a string"),
    oid: optional(`${where}.oid`, value.oid, isString, "a string"),
    size: optional(`${where}.size`, value.size, isCount, "a byte count"),
    lfs,
  };
}

/** Validates a posted scenario strictly: a typo in a knob must fail the test, not be ignored. */
export function parseScenario(value: unknown): Scenario {
  if (!isObject(value)) throw new ScenarioError("scenario: expected a JSON object");
  checkKeys("scenario", value, ["rules", "mainMoved", "extraEntries", "commitSha"]);
  const rules = value.rules ?? [];
  const extraEntries = value.extraEntries ?? [];
  if (!Array.isArray(rules)) throw new ScenarioError("scenario.rules: expected an array");
  if (!Array.isArray(extraEntries)) throw new ScenarioError("scenario.extraEntries: expected an array");
  return {
    rules: rules.map((rule, i) => parseRule(`scenario.rules[${i}]`, rule)),
    mainMoved: optional("scenario.mainMoved", value.mainMoved, isBoolean, "a boolean") ?? false,
    extraEntries: extraEntries.map((entry, i) => parseExtraEntry(`scenario.extraEntries[${i}]`, entry)),
    commitSha: optional("scenario.commitSha", value.commitSha, isString, "a string"),
  };
}

/** What a request looks like to the rule matcher. */
export interface RequestFacts {
  readonly origin: Origin;
  readonly path: string;
  readonly file?: string;
}

/** What a file body would be, to decide whether a body rule changes anything. */
export interface BodyFacts {
  readonly hasRange: boolean;
  readonly fullSize: number;
  readonly servedSize: number;
}

/** The live scenario with per-rule use counters. */
export class ScenarioState {
  #scenario: Scenario = EMPTY_SCENARIO;
  #matchers: RegExp[] = [];
  #usesLeft: number[] = [];

  get current(): Scenario {
    return this.#scenario;
  }

  set(scenario: Scenario): void {
    this.#scenario = scenario;
    this.#matchers = scenario.rules.map((rule) => globToRegExp(rule.match ?? "**"));
    this.#usesLeft = scenario.rules.map((rule) => rule.times ?? Number.POSITIVE_INFINITY);
  }

  reset(): void {
    this.set(EMPTY_SCENARIO);
  }

  /** The scenario plus uses left per rule (`null` = unlimited), for `GET /_world/scenario`. */
  snapshot(): Scenario & { usesLeft: Array<number | null> } {
    return { ...this.#scenario, usesLeft: this.#usesLeft.map((n) => (Number.isFinite(n) ? n : null)) };
  }

  /** The status rule to answer this request with, if any (spends one use). */
  takeStatus(request: RequestFacts): FaultRule | undefined {
    return this.#take(request, (rule) => rule.status !== undefined);
  }

  /** The body rule to serve this file body with, if any (spends one use). */
  takeBody(request: RequestFacts, body: BodyFacts): FaultRule | undefined {
    return this.#take(request, (rule) => {
      if (rule.status !== undefined) return false;
      const size = rule.ignoreRange && body.hasRange ? body.fullSize : body.servedSize;
      return (
        (rule.ignoreRange === true && body.hasRange) ||
        (rule.cutAfterBytes !== undefined && size > rule.cutAfterBytes) ||
        (rule.wrongBytes === true && size > 0) ||
        rule.bytesPerSecond !== undefined ||
        (rule.sizeDelta !== undefined && Math.max(0, body.fullSize + rule.sizeDelta) !== body.fullSize) ||
        rule.chunked === true
      );
    });
  }

  #take(request: RequestFacts, applies: (rule: FaultRule) => boolean): FaultRule | undefined {
    const rules = this.#scenario.rules;
    for (let i = 0; i < rules.length; i++) {
      const rule = rules[i];
      const matcher = this.#matchers[i];
      const left = this.#usesLeft[i] ?? 0;
      if (!rule || !matcher || left <= 0) continue;
      if (rule.origin !== undefined && rule.origin !== request.origin) continue;
      const matches = matcher.test(request.path) || (request.file !== undefined && matcher.test(request.file));
      if (!matches || !applies(rule)) continue;
      this.#usesLeft[i] = left - 1;
      return rule;
    }
    return undefined;
  }
}

/** One-line description of an applied rule, for the request log. */
export function describeRule(rule: FaultRule): string {
  const effects = Object.entries(rule)
    .filter(([key, value]) => value !== undefined && !["match", "origin", "times"].includes(key))
    .map(([key, value]) => `${key}=${String(value)}`);
  return effects.join(",");
}
