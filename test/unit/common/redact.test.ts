import { describe, expect, it } from "vitest";
import { Redactor, redact, redactor, redactUrl } from "../../../src/common/redact.ts";

describe("the redactor, literal secrets", () => {
  it("removes every occurrence of each registered secret", () => {
    const r = new Redactor();
    r.add("s3cret-value-123");
    r.add("another-secret");
    expect(r.redact("s3cret-value-123 and another-secret, again s3cret-value-123")).toBe("*** and ***, again ***");
  });

  it("registers the value without the whitespace a token file or variable carries", () => {
    const r = new Redactor();
    r.add("  tok-from-a-file\n");
    expect(r.redact("sent tok-from-a-file to the hub")).toBe("sent *** to the hub");
  });

  it("takes 8 characters as a secret, ignores shorter strings and no value at all", () => {
    const r = new Redactor();
    r.add(undefined);
    r.add("");
    r.add("1234567");
    r.add("abcdefgh");
    expect(r.redact("1234567 abcdefgh")).toBe("1234567 ***");
  });

  it("does not lose or double a secret registered twice", () => {
    const r = new Redactor();
    r.add("same-secret-1");
    r.add("same-secret-1");
    expect(r.redact("x same-secret-1 y")).toBe("x *** y");
  });

  it("leaves text without secrets as it is", () => {
    const text = "Downloading model-00001-of-00004.safetensors (4.9 GB) from https://huggingface.co/meta-llama";
    expect(new Redactor().redact(text)).toBe(text);
  });

  it("is shared: what the CLI registers on the process-wide one, redact() removes", () => {
    redactor.add("process-wide-secret");
    expect(redact("a process-wide-secret b")).toBe("a *** b");
  });
});

describe("the redactor, token patterns it was not told of", () => {
  it.each([
    ["HF_TOKEN=hf_SENTINELxxxxxxxxxxxxxxxxxxxxxxxxxxxx", "HF_TOKEN=hf_***"],
    ["tokens hf_abcdefgh and hf_ZZZZ9999zzzz", "tokens hf_*** and hf_***"],
    ["hf_short is not one", "hf_short is not one"],
    ["Authorization: Bearer abc.def-ghi", "Authorization: Bearer ***"],
    ["authorization: bearer   abc.def/ghi+jk==", "authorization: bearer ***"],
    ["Authorization: Basic dXNlcjpwYXNz", "Authorization: Basic ***"],
    ['{"headers":{"Authorization":"Bearer eyJhbGciOi.x_y~z"}}', '{"headers":{"Authorization":"Bearer ***"}}'],
  ])("%j", (text, expected) => {
    expect(new Redactor().redact(text)).toBe(expected);
  });
});

describe("the redactor, URLs", () => {
  it.each([
    ["https://u:ghp_SENTINEL@github.com/x.git", "https://***@github.com/x.git"],
    ["https://ghp_SENTINEL@github.com/x.git", "https://***@github.com/x.git"],
    ["clone git+ssh://git:pw@host/x and HTTPS://A:B@h/", "clone git+ssh://***@host/x and HTTPS://***@h/"],
    ["https://cdn/x?X-Amz-Signature=SENTINEL&a=1", "https://cdn/x?X-Amz-Signature=***&a=1"],
    [
      "https://cdn/x?X-Amz-Credential=AKIA%2F1&X-Amz-Security-Token=TOK&X-Amz-Signature=SIG",
      "https://cdn/x?X-Amz-Credential=***&X-Amz-Security-Token=***&X-Amz-Signature=***",
    ],
    ["https://cf/x?Policy=P1&Signature=S1&Key-Pair-Id=K1", "https://cf/x?Policy=***&Signature=***&Key-Pair-Id=***"],
    ["https://blob/x?sv=1&sig=S1 and https://h/y?token=T1", "https://blob/x?sv=1&sig=*** and https://h/y?token=***"],
    [`error "https://cdn/x?x-amz-signature=abc" at 1`, `error "https://cdn/x?x-amz-signature=***" at 1`],
  ])("%j", (text, expected) => {
    expect(new Redactor().redact(text)).toBe(expected);
  });
});

describe("redactUrl, a URL fit to print", () => {
  it.each([
    ["https://u:p@h/x?sig=1", "https://***@h/x"],
    ["https://only-user@h/x", "https://***@h/x"],
    ["https://:only-password@h/x", "https://***@h/x"],
    ["https://huggingface.co/api/models/x?expand=1", "https://huggingface.co/api/models/x"],
    ["https://huggingface.co/meta-llama/Meta-Llama-3-8B-Instruct", "https://huggingface.co/meta-llama/Meta-Llama-3-8B-Instruct"],
  ])("%j", (url, expected) => {
    expect(redactUrl(url)).toBe(expected);
  });

  it("still redacts what is not a URL", () => {
    expect(redactUrl("not a url with hf_abcdefghijk")).toBe("not a url with hf_***");
  });
});
