/**
 * The world's access tokens and users. Both tokens start with `hf_` because @huggingface/hub
 * refuses any other token before sending a request (checkCredentials.ts), so a test token
 * without the prefix would never reach the server.
 */

/** User `world-user`: valid, and approved for every gated repo of the world. */
export const GRANTED_TOKEN = "hf_worldGRANTEDaaaaaaaaaaaaaaaaaaaaaa";
/** User `world-denied`: valid (whoami works), but not approved for gated repos: 403 GatedRepo. */
export const DENIED_TOKEN = "hf_worldDENIEDbbbbbbbbbbbbbbbbbbbbbbb";

/**
 * User `world-sentinel`: granted like world-user. The secret-leak tests (reliability case 37) run
 * the product with it and search every output, log, argv and container for "SENTINEL".
 */
export const SENTINEL_TOKEN = "hf_SENTINELxxxxxxxxxxxxxxxxxxxxxxxxxxxx";

export interface WorldUser {
  readonly id: string;
  readonly name: string;
  readonly fullname: string;
  /** Approved for gated repos. */
  readonly gatedAccess: boolean;
}

const USERS: ReadonlyMap<string, WorldUser> = new Map([
  [GRANTED_TOKEN, { id: "66a0000000000000000000a1", name: "world-user", fullname: "World User", gatedAccess: true }],
  [DENIED_TOKEN, { id: "66a0000000000000000000d1", name: "world-denied", fullname: "World Denied", gatedAccess: false }],
  [SENTINEL_TOKEN, { id: "66a0000000000000000000e1", name: "world-sentinel", fullname: "World Sentinel", gatedAccess: true }],
]);

/** What a request's credentials amount to. `invalid` covers malformed headers as well as unknown tokens. */
export type Credentials =
  | { readonly kind: "none" }
  | { readonly kind: "invalid" }
  | { readonly kind: "user"; readonly user: WorldUser };

/** Classifies an `Authorization` header value (`Bearer <token>`); `undefined` means no header. */
export function credentialsFromHeader(authorization: string | undefined): Credentials {
  if (authorization === undefined) return { kind: "none" };
  const match = /^Bearer\s+(\S+)\s*$/i.exec(authorization);
  const token = match?.[1];
  if (token === undefined) return { kind: "invalid" };
  return credentialsFromToken(token);
}

/** Classifies a bare token string. */
export function credentialsFromToken(token: string): Credentials {
  const user = USERS.get(token);
  return user ? { kind: "user", user } : { kind: "invalid" };
}

/** Token class in one word, for tests and logs: never the token itself. */
export function tokenClass(token: string | undefined): "none" | "granted" | "denied" | "invalid" {
  if (token === undefined || token === "") return "none";
  if (token === GRANTED_TOKEN || token === SENTINEL_TOKEN) return "granted";
  if (token === DENIED_TOKEN) return "denied";
  return "invalid";
}
