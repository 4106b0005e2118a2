/**
 * The one redactor every sink goes through (terminal, --json, logs, state, error messages):
 * the literal secrets the tool knows of, plus patterns for secrets it does not (reliability S2).
 */

const patterns: readonly [RegExp, string][] = [
  // Hugging Face user and org tokens.
  [/\bhf_[A-Za-z0-9]{8,}\b/g, "hf_***"],
  // Authorization headers however they got into a string.
  [/\b(Bearer|Basic)\s+[\w+=\-./~]+/gi, "$1 ***"],
  // Credentials in URLs: https://user:secret@host, https://token@host
  [/(\b[a-z][a-z0-9+.-]*:\/\/)[^\s/@]+@/gi, "$1***@"],
  // Signed CDN URLs carry their credential in the query string.
  [/([?&](?:X-Amz-Signature|X-Amz-Credential|X-Amz-Security-Token|Signature|sig|token|Key-Pair-Id|Policy)=)[^&\s"']+/gi, "$1***"],
];

export class Redactor {
  readonly #secrets: string[] = [];

  /** Registers a literal secret (a token read from the environment or the token file). */
  add(secret: string | undefined): void {
    const value = secret?.trim();
    // Very short strings would redact ordinary words; real tokens are long.
    if (value && value.length >= 8 && !this.#secrets.includes(value)) this.#secrets.push(value);
  }

  redact(text: string): string {
    let out = text;
    for (const secret of this.#secrets) out = out.split(secret).join("***");
    for (const [pattern, replacement] of patterns) out = out.replace(pattern, replacement);
    return out;
  }
}

/** The process-wide redactor; the CLI registers the secrets it reads as it reads them. */
export const redactor = new Redactor();
export const redact = (text: string): string => redactor.redact(text);

/** A URL fit to print or record: no userinfo, no query string (signed URLs carry secrets there). */
export function redactUrl(url: string): string {
  try {
    const parsed = new URL(url);
    if (parsed.username || parsed.password) {
      parsed.username = "***";
      parsed.password = "";
    }
    parsed.search = "";
    return redact(parsed.toString());
  } catch {
    return redact(url);
  }
}
