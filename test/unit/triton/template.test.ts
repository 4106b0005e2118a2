import { describe, expect, it } from "vitest";
import { placeholders, safeSubstitute } from "../../../src/triton/template.ts";

describe("safe_substitute semantics", () => {
  it("replaces $name and ${name}, turns $$ into $, and leaves unknown placeholders", () => {
    const { text, unfilled } = safeSubstitute("a: $x, b: ${y}, c: $$x, d: ${z}, e: $ alone, f: $1", { x: "1", y: "2" });
    expect(text).toBe("a: 1, b: 2, c: $x, d: ${z}, e: $ alone, f: $1");
    expect(unfilled).toEqual(["z"]);
  });

  it("takes values with , and : as they are (fill_template.py cannot)", () => {
    expect(safeSubstitute('string_value: "${engine_dir}"', { engine_dir: "/m,x:y" }).text).toBe('string_value: "/m,x:y"');
  });

  it("does not read a replacement as a template", () => {
    expect(safeSubstitute("${a}", { a: "${b}" }).text).toBe("${b}");
  });

  it("lists placeholders once each", () => {
    expect(placeholders("${a} $b ${a} $$c")).toEqual(["a", "b"]);
  });
});
