import { describe, expect, it } from "vitest";
import { Redactor, redactUrl } from "../../../src/common/redact.ts";

describe("the redactor", () => {
  it("removes a registered secret and token-shaped strings", () => {
    const r = new Redactor();
    r.add("s3cret-value-123");
    expect(r.redact("token s3cret-value-123 used")).toBe("token *** used");
    expect(r.redact("HF_TOKEN=hf_SENTINELxxxxxxxxxxxxxxxxxxxxxxxxxxxx")).toBe("HF_TOKEN=hf_***");
    expect(r.redact("Authorization: Bearer abc.def-ghi")).toBe("Authorization: Bearer ***");
  });

  it("removes credentials and signatures from URLs", () => {
    const r = new Redactor();
    expect(r.redact("https://u:ghp_SENTINEL@github.com/x.git")).toBe("https://***@github.com/x.git");
    expect(r.redact("https://ghp_SENTINEL@github.com/x.git")).toBe("https://***@github.com/x.git");
    expect(r.redact("https://cdn/x?X-Amz-Signature=SENTINEL&a=1")).toBe("https://cdn/x?X-Amz-Signature=***&a=1");
    expect(redactUrl("https://u:p@h/x?sig=1")).toBe("https://***@h/x");
  });

  it("ignores secrets too short to be real", () => {
    const r = new Redactor();
    r.add("abc");
    expect(r.redact("abc")).toBe("abc");
  });
});
