import type { Settings } from "../config/schema.ts";
import type { ContainerSummary } from "../docker/docker-client.ts";
import { containerPorts } from "../triton/launch.ts";

/** Where clients reach the server. Light on purpose: `ask` imports it without loading Docker. */
export interface ServerUrls {
  readonly http: string;
  readonly grpc: string;
  readonly metrics: string;
}

/** Where a client reaches the server: a server published on every interface is reached on loopback. */
export function serverUrls(host: string, ports: { readonly http: number; readonly grpc: number; readonly metrics: number }): ServerUrls {
  const at = host === "0.0.0.0" || host === "" || host === "::" ? "127.0.0.1" : host;
  return { http: `http://${at}:${ports.http}`, grpc: `${at}:${ports.grpc}`, metrics: `http://${at}:${ports.metrics}/metrics` };
}

export function settingsUrls(s: Pick<Settings, "host" | "port" | "grpcPort" | "metricsPort">): ServerUrls {
  return serverUrls(s.host, { http: s.port, grpc: s.grpcPort, metrics: s.metricsPort });
}

/** The URLs of a running server container, from the ports the engine really published. */
export function containerUrls(container: Pick<ContainerSummary, "ports">): ServerUrls | undefined {
  // An address on every interface is listed twice (0.0.0.0 and ::): prefer the IPv4 entry.
  const find = (port: number) => container.ports.filter((p) => p.container === port).sort((a, b) => Number(a.hostIp.includes(":")) - Number(b.hostIp.includes(":")))[0];
  const http = find(containerPorts.http);
  const grpc = find(containerPorts.grpc);
  const metrics = find(containerPorts.metrics);
  if (!http || !grpc || !metrics) return undefined;
  return serverUrls(http.hostIp, { http: http.host, grpc: grpc.host, metrics: metrics.host });
}


/** Where clients reach the OpenAI gateway: a gateway on every interface is reached on loopback. */
export function gatewayUrl(host: string, port: number): string {
  return `http://${host === "0.0.0.0" || host === "" || host === "::" ? "127.0.0.1" : host}:${port}`;
}
