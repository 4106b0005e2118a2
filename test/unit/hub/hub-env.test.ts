import { mkdirSync, writeFileSync } from "node:fs";
import { homedir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { UsageError } from "../../../src/common/errors.ts";
import { redact } from "../../../src/common/redact.ts";
import { readHubEnv } from "../../../src/hub/hub-env.ts";
import { tempDir } from "../../helpers/tmp.ts";

/** An environment with nothing of the user's: a HOME of its own. */
function env(home: string, vars: Record<string, string | undefined> = {}) {
  return { HOME: home, ...vars };
}

describe("readHubEnv: huggingface_hub's rules, read in one place", () => {
  it("defaults: huggingface.co, ~/.cache/huggingface/hub, the token file beside it, online", () => {
    using home = tempDir();
    expect(readHubEnv(env(home.path))).toEqual({
      endpoint: "https://huggingface.co",
      token: undefined,
      tokenSource: undefined,
      tokenLookup: ["HF_TOKEN", "HUGGING_FACE_HUB_TOKEN", join(home.path, ".cache/huggingface/token")],
      cacheDir: join(home.path, ".cache/huggingface/hub"),
      offline: false,
    });
  });

  it("HOME falls back to the user's home folder", () => {
    expect(readHubEnv({ HF_TOKEN_PATH: "/nonexistent/token" }).cacheDir).toBe(join(homedir(), ".cache/huggingface/hub"));
  });

  it("cache: HF_HUB_CACHE over HUGGINGFACE_HUB_CACHE over $HF_HOME/hub over $XDG_CACHE_HOME/huggingface/hub", () => {
    using home = tempDir();
    const all = { HF_HUB_CACHE: "/a", HUGGINGFACE_HUB_CACHE: "/b", HF_HOME: "/c", XDG_CACHE_HOME: "/d" };
    expect(readHubEnv(env(home.path, all)).cacheDir).toBe("/a");
    expect(readHubEnv(env(home.path, { ...all, HF_HUB_CACHE: undefined })).cacheDir).toBe("/b");
    expect(readHubEnv(env(home.path, { HF_HOME: "/c", XDG_CACHE_HOME: "/d" })).cacheDir).toBe("/c/hub");
    expect(readHubEnv(env(home.path, { XDG_CACHE_HOME: "/d" })).cacheDir).toBe("/d/huggingface/hub");
    expect(readHubEnv(env(home.path, { HF_HOME: "/c" })).tokenLookup[2]).toBe("/c/token");
  });

  it("endpoint: HF_ENDPOINT without trailing slashes", () => {
    using home = tempDir();
    expect(readHubEnv(env(home.path, { HF_ENDPOINT: "http://127.0.0.1:5056//" })).endpoint).toBe("http://127.0.0.1:5056");
  });

  it("token: HF_TOKEN, then HUGGING_FACE_HUB_TOKEN, then the token file, whitespace trimmed, registered with the redactor", () => {
    using home = tempDir();
    const file = join(home.path, "token");
    writeFileSync(file, "  hf_fromTheTokenFile123\n");
    const base = { HF_TOKEN_PATH: file };
    expect(readHubEnv(env(home.path, { ...base, HF_TOKEN: " hf_fromHfToken12345 ", HUGGING_FACE_HUB_TOKEN: "hf_legacyVariable123" }))).toMatchObject({
      token: "hf_fromHfToken12345",
      tokenSource: "HF_TOKEN",
    });
    expect(readHubEnv(env(home.path, { ...base, HF_TOKEN: "  ", HUGGING_FACE_HUB_TOKEN: "hf_legacyVariable123" }))).toMatchObject({
      token: "hf_legacyVariable123",
      tokenSource: "HUGGING_FACE_HUB_TOKEN",
    });
    expect(readHubEnv(env(home.path, base))).toMatchObject({ token: "hf_fromTheTokenFile123", tokenSource: file });
    expect(redact("x hf_fromTheTokenFile123 y")).not.toContain("fromTheTokenFile");
    // The default token file is $HF_HOME/token.
    writeFileSync(join(home.path, "hfhome-token"), "hf_inHfHome123456");
    expect(readHubEnv(env(home.path, { HF_HOME: home.path, HF_TOKEN_PATH: join(home.path, "hfhome-token") })).token).toBe("hf_inHfHome123456");
  });

  it("an empty token file is no token", () => {
    using home = tempDir();
    const file = join(home.path, "token");
    writeFileSync(file, " \n");
    expect(readHubEnv(env(home.path, { HF_TOKEN_PATH: file }))).toMatchObject({ token: undefined, tokenSource: undefined });
  });

  it("a token that does not start with hf_ is a usage error naming its source, never echoing it (case 12a)", () => {
    using home = tempDir();
    const file = join(home.path, "token");
    writeFileSync(file, "ghp_notAHuggingFaceToken");
    for (const [vars, source] of [
      [{ HF_TOKEN: "sk-notAHuggingFaceToken" }, "HF_TOKEN"],
      [{ HF_TOKEN_PATH: file }, file],
    ] as const) {
      let error: unknown;
      try {
        readHubEnv(env(home.path, vars));
      } catch (e) {
        error = e;
      }
      expect(error).toBeInstanceOf(UsageError);
      // Whatever was pasted may be a secret of another service: it is redacted from then on.
      expect(redact(`x ${source === "HF_TOKEN" ? "sk-notAHuggingFaceToken" : "ghp_notAHuggingFaceToken"} y`)).toBe("x *** y");
      expect((error as Error).message).toBe(
        `The Hugging Face token from ${source} is not a token (they start with hf_). Copy it again from https://huggingface.co/settings/tokens.`,
      );
    }
  });

  it("offline: HF_HUB_OFFLINE or TRANSFORMERS_OFFLINE set to 1, true, yes or on, in any case", () => {
    using home = tempDir();
    for (const value of ["1", "true", "TRUE", "yes", "On"]) {
      expect(readHubEnv(env(home.path, { HF_HUB_OFFLINE: value })).offline).toBe(true);
      expect(readHubEnv(env(home.path, { TRANSFORMERS_OFFLINE: value })).offline).toBe(true);
    }
    for (const value of ["0", "false", "", "no", "off", "2"]) {
      expect(readHubEnv(env(home.path, { HF_HUB_OFFLINE: value, TRANSFORMERS_OFFLINE: value })).offline).toBe(false);
    }
  });
});

describe("readHubEnv refuses what cannot work, naming the variable (exit 2)", () => {
  it.each(["not a url", "ftp://x", "file:///etc", "https://user:pass@hub.example", "https://tok@hub.example", "https://hub.example/?token=x", "https://hub.example/#x"])(
    "HF_ENDPOINT=%j",
    (value) => {
      using home = tempDir();
      const attempt = () => readHubEnv(env(home.path, { HF_ENDPOINT: value }));
      expect(attempt).toThrow(UsageError);
      expect(attempt).toThrow(
        `HF_ENDPOINT must be an http:// or https:// URL without credentials or query, such as https://huggingface.co; got ${JSON.stringify(value)}.`,
      );
    },
  );

  it.each([
    ["http://127.0.0.1:5056", "http://127.0.0.1:5056"],
    ["  https://hub.example/mirror//  ", "https://hub.example/mirror"],
    [undefined, "https://huggingface.co"],
    ["", "https://huggingface.co"],
    ["   ", "https://huggingface.co"],
  ])("accepts HF_ENDPOINT=%j as %j", (value, endpoint) => {
    using home = tempDir();
    expect(readHubEnv(env(home.path, { HF_ENDPOINT: value })).endpoint).toBe(endpoint);
  });

  it("a token file that is there but cannot be read names the file and the error", () => {
    using home = tempDir();
    // A folder in the token's place: no user can read it as a file (root included).
    mkdirSync(join(home.path, ".cache/huggingface/token"), { recursive: true });
    const attempt = () => readHubEnv(env(home.path));
    expect(attempt).toThrow(UsageError);
    expect(attempt).toThrow(
      `The Hugging Face token file ${join(home.path, ".cache/huggingface/token")} cannot be read (EISDIR). Fix its permissions, or point HF_TOKEN_PATH elsewhere, or set HF_TOKEN.`,
    );
    // HF_TOKEN wins before the file is read at all.
    expect(readHubEnv(env(home.path, { HF_TOKEN: "hf_fromtheenvironment0001" })).tokenSource).toBe("HF_TOKEN");
  });

  it("a token with a space or a line break inside is refused, without echoing it", () => {
    using home = tempDir();
    const path = join(home.path, "token");
    writeFileSync(path, "hf_firstpart000001\nhf_secondpart00002\n");
    const attempt = () => readHubEnv(env(home.path, { HF_TOKEN_PATH: path }));
    expect(attempt).toThrow(UsageError);
    expect(attempt).toThrow(
      `The Hugging Face token from ${path} has spaces or line breaks in it: a token is one word starting with hf_. Copy it again from https://huggingface.co/settings/tokens.`,
    );
    expect(() => readHubEnv(env(home.path, { HF_TOKEN: "hf_one two0000000000" }))).toThrow("has spaces or line breaks in it");
  });
});
