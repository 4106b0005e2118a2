import { readdir, readFile, readlink } from "node:fs/promises";
import { createServer } from "node:net";

export type PortCheck =
  | { readonly state: "free" }
  | { readonly state: "in-use"; readonly holder: string | undefined }
  | { readonly state: "not-local" };

/**
 * Whether the engine could publish `hostIp:port`: bind it ourselves for a moment, on the same
 * address (reliability case 31). Done before anything is created, so a taken port costs nothing.
 * A port below 1024 that only root may bind is left to the engine (dockerd binds as root).
 */
export async function checkPort(hostIp: string, port: number): Promise<PortCheck> {
  const code = await new Promise<string | undefined>((resolve) => {
    const server = createServer();
    server.once("error", (error: NodeJS.ErrnoException) => resolve(error.code ?? "error"));
    server.listen({ host: hostIp, port, exclusive: true }, () => server.close(() => resolve(undefined)));
  });
  if (code === "EADDRINUSE") return { state: "in-use", holder: await portHolder(port) };
  if (code === "EADDRNOTAVAIL") return { state: "not-local" };
  return { state: "free" };
}

/** The one wording for a taken port, from the pre-flight check and from the engine's refusal alike. */
export function portInUseMessage(hostIp: string, port: number, flag: string, holder?: string): string {
  // docker-proxy holds the ports Docker publishes: the user knows the container, not the proxy.
  const by = holder === undefined ? "" : / docker-proxy$/.test(holder) ? " (by a Docker container: see `docker ps`)" : ` (by ${holder})`;
  return `Port ${port} on ${hostIp} is in use${by}. Stop what uses it, or pass \`${flag}\` with a free port.`;
}

/**
 * "pid 999 python3" for the process listening on `port`, when this user may see it (Linux:
 * /proc/net/tcp{,6} gives the socket's inode, /proc/<pid>/fd the process). Best effort.
 */
export async function portHolder(port: number): Promise<string | undefined> {
  const inodes = new Set<string>();
  for (const table of ["/proc/net/tcp", "/proc/net/tcp6"]) {
    const text = await readFile(table, "utf8").catch(() => "");
    for (const line of text.split("\n").slice(1)) {
      const fields = line.trim().split(/\s+/);
      const local = fields[1];
      // State 0A is LISTEN.
      if (!local || fields[3] !== "0A") continue;
      if (Number.parseInt(local.split(":")[1] ?? "", 16) === port && fields[9]) inodes.add(fields[9]);
    }
  }
  if (inodes.size === 0) return undefined;
  const pids = (await readdir("/proc").catch(() => [] as string[])).filter((name) => /^\d+$/.test(name));
  for (const pid of pids) {
    const fds = await readdir(`/proc/${pid}/fd`).catch(() => [] as string[]);
    for (const fd of fds) {
      const target = await readlink(`/proc/${pid}/fd/${fd}`).catch(() => "");
      const inode = /^socket:\[(\d+)\]$/.exec(target)?.[1];
      if (inode && inodes.has(inode)) {
        const name = (await readFile(`/proc/${pid}/comm`, "utf8").catch(() => "")).trim();
        return `pid ${pid}${name ? ` ${name}` : ""}`;
      }
    }
  }
  return undefined;
}
