import type { Agent } from "node:http";
import type { Readable } from "node:stream";
import { nodeHttp, nodeHttps } from "../common/node-http.ts";

/**
 * An HTTP answer with its body as a Node stream. The downloads go through node:http rather than
 * fetch: on the same link it moves a large body with markedly less CPU (bench/download.ts), and
 * its stream pipes straight into a file with backpressure.
 */
export interface HttpAnswer {
  readonly status: number;
  readonly ok: boolean;
  header(name: string): string | undefined;
  readonly body: Readable;
  text(): Promise<string>;
  json<T>(): Promise<T>;
  /** Throws the body away (keeping the connection for the next request when possible). */
  discard(): void;
}

/** Keep-alive: every file of a model comes from the same two hosts. Made on first use. */
let httpAgent: Agent | undefined;
let httpsAgent: Agent | undefined;
const agentFor = (protocol: string): Agent =>
  protocol === "https:"
    ? (httpsAgent ??= new (nodeHttps().Agent)({ keepAlive: true, maxSockets: 16 }))
    : (httpAgent ??= new (nodeHttp().Agent)({ keepAlive: true, maxSockets: 16 }));

export function httpGet(url: string, options: { headers: Record<string, string>; signal: AbortSignal }): Promise<HttpAnswer> {
  const target = new URL(url);
  // The agent makes the connection, plain or TLS: http.get serves both.
  const agent = agentFor(target.protocol);
  return new Promise((resolve, reject) => {
    const request = nodeHttp().get(target, { headers: options.headers, agent, signal: options.signal }, (response) => {
      const status = response.statusCode ?? 0;
      const text = async () => {
        const chunks: Buffer[] = [];
        for await (const chunk of response) chunks.push(chunk as Buffer);
        return Buffer.concat(chunks).toString("utf8");
      };
      resolve({
        status,
        ok: status >= 200 && status < 300,
        header: (name) => {
          const value = response.headers[name.toLowerCase()];
          return Array.isArray(value) ? value.join(", ") : value;
        },
        body: response,
        text,
        json: async <T>() => JSON.parse(await text()) as T,
        discard: () => response.resume(),
      });
    });
    request.on("error", reject);
  });
}
