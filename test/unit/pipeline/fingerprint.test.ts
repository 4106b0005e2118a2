import { describe, expect, it } from "vitest";
import { canonicalJson, describeChanges, fingerprint } from "../../../src/pipeline/fingerprint.ts";

describe("fingerprints", () => {
  it("do not depend on key order", () => {
    expect(canonicalJson({ b: 1, a: { d: [1, { y: 2, x: 1 }], c: null } })).toBe('{"a":{"c":null,"d":[1,{"x":1,"y":2}]},"b":1}');
    expect(fingerprint("engine", { dtype: "bfloat16", tp: 1 })).toBe(fingerprint("engine", { tp: 1, dtype: "bfloat16" }));
  });

  it("change when any input changes, and differ between steps", () => {
    const base = fingerprint("engine", { dtype: "bfloat16", tp: 1 });
    expect(fingerprint("engine", { dtype: "float16", tp: 1 })).not.toBe(base);
    expect(fingerprint("engine", { dtype: "bfloat16", tp: 2 })).not.toBe(base);
    expect(fingerprint("engine", { dtype: "bfloat16", tp: 1, extra: true })).not.toBe(base);
    expect(fingerprint("checkpoint", { dtype: "bfloat16", tp: 1 })).not.toBe(base);
  });
});

describe("stale reasons", () => {
  it("name the input that changed with its old and new value", () => {
    expect(describeChanges({ dtype: "float16", tp: 1 }, { dtype: "bfloat16", tp: 1 })).toEqual(["dtype changed float16 → bfloat16"]);
  });

  it("name an upstream step that changed, added and removed inputs", () => {
    expect(
      describeChanges({ "upstream.checkpoint": "a".repeat(64), old: 1 }, { "upstream.checkpoint": "b".repeat(64), maxBatchSize: 8 }),
    ).toEqual(["upstream checkpoint changed", "maxBatchSize is new (8)", "old no longer applies"]);
  });

  it("shorten commit hashes", () => {
    expect(describeChanges({ commit: "a".repeat(40) }, { commit: "b".repeat(40) })).toEqual([
      `commit changed ${"a".repeat(12)} → ${"b".repeat(12)}`,
    ]);
  });

  it("are empty when nothing changed", () => {
    expect(describeChanges({ a: [1, 2] }, { a: [1, 2] })).toEqual([]);
  });
});
