import { describe, expect, it } from "vitest";
import { FailedError } from "../../../src/common/errors.ts";
import { HubError, hubError } from "../../../src/hub/hub-errors.ts";
import type { HubEnv } from "../../../src/hub/hub-env.ts";

const endpoint = "https://hub.example";
const withToken: HubEnv = { endpoint, token: "hf_x", tokenSource: "HF_TOKEN", tokenLookup: ["HF_TOKEN", "HUGGING_FACE_HUB_TOKEN", "/h/token"], cacheDir: "/c", offline: false };
const noToken: HubEnv = { ...withToken, token: undefined, tokenSource: undefined };
const what = { repo: "org/model", revision: "dev", path: "config.json" };
/** `null` for an answer without a request id. */
const failure = (status: number, errorCode?: string, message = "", requestId: string | null = "Root=1-abc") => ({
  status,
  errorCode,
  message,
  requestId: requestId ?? undefined,
});

describe("Hub errors: one message per case, each with its fix (cases 10-12)", () => {
  it.each([
    [
      "a rejected token (401 invalid credentials), whatever the code",
      failure(401, "GatedRepo", "Invalid credentials in Authorization header"),
      withToken,
      "The Hugging Face token from HF_TOKEN was rejected (revoked or expired). Create a new one at https://huggingface.co/settings/tokens, then `huggingface-cli login` or `export HF_TOKEN=…`.",
    ],
    [
      "a rejected token of unknown source",
      failure(401, undefined, "invalid CREDENTIALS"),
      noToken,
      "The Hugging Face token from the environment was rejected (revoked or expired). Create a new one at https://huggingface.co/settings/tokens, then `huggingface-cli login` or `export HF_TOKEN=…`.",
    ],
    [
      "gated, no token (401 GatedRepo)",
      failure(401, "GatedRepo", "Access to model org/model is restricted."),
      noToken,
      "org/model is gated and no Hugging Face token was found (looked in HF_TOKEN, HUGGING_FACE_HUB_TOKEN, /h/token). Request access at https://hub.example/org/model, then run `huggingface-cli login` or `export HF_TOKEN=hf_…`.",
    ],
    [
      "no token and a 401 without a code",
      failure(401),
      noToken,
      "org/model is gated and no Hugging Face token was found (looked in HF_TOKEN, HUGGING_FACE_HUB_TOKEN, /h/token). Request access at https://hub.example/org/model, then run `huggingface-cli login` or `export HF_TOKEN=hf_…`.",
    ],
    [
      "gated, token not approved (403)",
      failure(403, "GatedRepo"),
      withToken,
      "Your Hugging Face token (from HF_TOKEN) has no access to org/model. Request access at https://hub.example/org/model (accept the licence) and rerun when it is approved.",
    ],
    [
      "gated, token not approved (401 GatedRepo with a token)",
      failure(401, "GatedRepo"),
      withToken,
      "Your Hugging Face token (from HF_TOKEN) has no access to org/model. Request access at https://hub.example/org/model (accept the licence) and rerun when it is approved.",
    ],
    [
      "revision not found",
      failure(404, "RevisionNotFound"),
      withToken,
      "Revision `dev` not found in org/model. Check --revision. (request id Root=1-abc)",
    ],
    ["a file not found", failure(404, "EntryNotFound"), withToken, "config.json not found in org/model at dev. (request id Root=1-abc)"],
    ["repo not found (404)", failure(404, "RepoNotFound"), withToken, "Repository org/model not found on https://hub.example. Check --model; a private repository also needs a token that can see it. (request id Root=1-abc)"],
    [
      "repo not found without a token (the Hub's 401 RepoNotFound): not called gated",
      failure(401, "RepoNotFound"),
      noToken,
      "Repository org/model not found on https://hub.example. Check --model; a private repository also needs a token that can see it. (request id Root=1-abc)",
    ],
    [
      "a token the Hub does not know this repo for (401 with a token, no code)",
      failure(401, undefined, "", null),
      withToken,
      "Repository org/model not found on https://hub.example. Check --model; a private repository also needs a token that can see it.",
    ],
    ["anything else: the status and the Hub's words", failure(500, undefined, "boom"), withToken, "The Hub answered 500 for org/model: boom (request id Root=1-abc)"],
    // The status decides first: a code or wording that comes with another status does not.
    [
      "403 whose words say invalid credentials",
      failure(403, undefined, "Invalid credentials in Authorization header"),
      withToken,
      "Your Hugging Face token (from HF_TOKEN) has no access to org/model. Request access at https://hub.example/org/model (accept the licence) and rerun when it is approved.",
    ],
    ["404 revision, no token: not called gated", failure(404, "RevisionNotFound"), noToken, "Revision `dev` not found in org/model. Check --revision. (request id Root=1-abc)"],
    ["400 with GatedRepo", failure(400, "GatedRepo", "bad"), withToken, "The Hub answered 400 for org/model: bad (request id Root=1-abc)"],
    ["400 with RevisionNotFound", failure(400, "RevisionNotFound", "bad"), withToken, "The Hub answered 400 for org/model: bad (request id Root=1-abc)"],
    ["400 with EntryNotFound", failure(400, "EntryNotFound", "bad"), withToken, "The Hub answered 400 for org/model: bad (request id Root=1-abc)"],
    ["anything else, no request id", failure(400, "BadRequest", "bad", null), withToken, "The Hub answered 400 for org/model: bad"],
  ])("%s", (_, f, hub, message) => {
    const error = hubError(f, what, hub);
    expect(error).toBeInstanceOf(HubError);
    expect(error).toBeInstanceOf(FailedError);
    expect(error.kind).toBe("hub");
    expect(error.status).toBe(f.status);
    expect(error.message).toBe(message);
  });

  it("names the account a refused token belongs to, when it is known (case 11)", () => {
    expect(hubError(failure(403, "GatedRepo"), what, withToken, "alice").message).toBe(
      "Your Hugging Face token (from HF_TOKEN, user `alice`) has no access to org/model. Request access at https://hub.example/org/model (accept the licence) and rerun when it is approved.",
    );
    // Only the refusal says whose: a missing repo does not.
    expect(hubError(failure(404, "RepoNotFound"), what, withToken, "alice").message).not.toContain("alice");
  });

  it("names the file generically when the request was not about one", () => {
    expect(hubError(failure(404, "EntryNotFound", "", null), { repo: "org/model", revision: "main" }, withToken).message).toBe(
      "A file not found in org/model at main.",
    );
  });
});
