import { createServer, type Server } from "node:net";

/** A loopback port nothing listens on (bound, then released). */
export async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen({ host: "127.0.0.1", port: 0 }, resolve));
  const { port } = server.address() as { port: number };
  await new Promise((resolve) => server.close(resolve));
  return port;
}

/** Four loopback ports nothing listens on (held together, so they differ), as the settings' environment. */
export async function freePorts(): Promise<{ env: Record<string, string>; http: number; grpc: number; metrics: number; openai: number }> {
  const servers: Server[] = [];
  const ports: number[] = [];
  for (let i = 0; i < 4; i++) {
    const server = createServer();
    await new Promise<void>((resolve) => server.listen({ host: "127.0.0.1", port: 0 }, resolve));
    servers.push(server);
    ports.push((server.address() as { port: number }).port);
  }
  await Promise.all(servers.map((s) => new Promise((resolve) => s.close(resolve))));
  const [http, grpc, metrics, openai] = ports as [number, number, number, number];
  return {
    http,
    grpc,
    metrics,
    openai,
    env: { LLAMA3_TRT_PORT: String(http), LLAMA3_TRT_GRPC_PORT: String(grpc), LLAMA3_TRT_METRICS_PORT: String(metrics), LLAMA3_TRT_OPENAI_PORT: String(openai) },
  };
}
