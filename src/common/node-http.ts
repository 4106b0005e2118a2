/**
 * node:http and node:https by require, not by import. An ES import of a builtin reads every
 * export of its namespace, and node:http's WebSocket, CloseEvent and MessageEvent getters load
 * undici: about 20 ms of every command that asks Docker or the Hub anything (measured: import
 * 22-29 ms, require 3-4 ms). require reads only what is used. Each is loaded on first use
 * (node:https brings TLS, which a plain-HTTP engine socket never needs).
 */
import { createRequire } from "node:module";

type Http = typeof import("node:http");
type Https = typeof import("node:https");

const requireBuiltin = createRequire(import.meta.url);
let httpModule: Http | undefined;
let httpsModule: Https | undefined;

export function nodeHttp(): Http {
  httpModule ??= requireBuiltin("node:http") as Http;
  return httpModule;
}

export function nodeHttps(): Https {
  httpsModule ??= requireBuiltin("node:https") as Https;
  return httpsModule;
}
