import { FailedError } from "../common/errors.ts";
import type { HubEnv } from "./hub-env.ts";

export interface HubFailure {
  readonly status: number;
  /** The Hub's `X-Error-Code` header: GatedRepo, RepoNotFound, RevisionNotFound, EntryNotFound. */
  readonly errorCode: string | undefined;
  readonly message: string;
  readonly requestId: string | undefined;
}

export class HubError extends FailedError {
  override readonly kind = "hub";
  readonly status: number;
  constructor(status: number, message: string, options?: ErrorOptions) {
    super(message, options);
    this.status = status;
  }
}

/**
 * One message per case, each saying what to do (reliability cases 10-12, H9). The cases are told
 * apart by status, the Hub's error code and whether a token was sent, not by message wording alone.
 */
export function hubError(
  failure: HubFailure,
  what: { repo: string; revision?: string; path?: string },
  hub: HubEnv,
  /** Whose token it is, when asked (a refusal of access names the account that needs it). */
  user?: string,
): HubError {
  const page = `${hub.endpoint}/${what.repo}`;
  const id = failure.requestId ? ` (request id ${failure.requestId})` : "";
  const { status, errorCode } = failure;
  if (status === 401 && /invalid credentials/i.test(failure.message)) {
    return new HubError(
      status,
      `The Hugging Face token from ${hub.tokenSource ?? "the environment"} was rejected (revoked or expired). ` +
        `Create a new one at https://huggingface.co/settings/tokens, then \`huggingface-cli login\` or \`export HF_TOKEN=…\`.`,
    );
  }
  // Without a token the Hub answers 401 for a repo that does not exist too: that is not "gated".
  if (status === 401 && !hub.token && errorCode !== "RepoNotFound") {
    return new HubError(
      status,
      `${what.repo} is gated and no Hugging Face token was found (looked in ${hub.tokenLookup.join(", ")}). ` +
        `Request access at ${page}, then run \`huggingface-cli login\` or \`export HF_TOKEN=hf_…\`.`,
    );
  }
  if (status === 403 || (status === 401 && errorCode === "GatedRepo")) {
    return new HubError(
      status,
      `Your Hugging Face token (from ${hub.tokenSource}${user ? `, user \`${user}\`` : ""}) has no access to ${what.repo}. ` +
        `Request access at ${page} (accept the licence) and rerun when it is approved.`,
    );
  }
  if (status === 404 && errorCode === "RevisionNotFound") {
    return new HubError(status, `Revision \`${what.revision}\` not found in ${what.repo}. Check --revision.${id}`);
  }
  if (status === 404 && errorCode === "EntryNotFound") {
    return new HubError(status, `${what.path ?? "A file"} not found in ${what.repo} at ${what.revision}.${id}`);
  }
  if (status === 404 || status === 401) {
    return new HubError(
      status,
      `Repository ${what.repo} not found on ${hub.endpoint}. Check --model; a private repository also needs a token that can see it.${id}`,
    );
  }
  return new HubError(status, `The Hub answered ${status} for ${what.repo}: ${failure.message}${id}`);
}
