/** Small probes: does something answer on this URL or port? */
import net from "node:net";

/** The HTTP status `url` answers with, or undefined when nothing answers within `timeoutMs`. */
export async function httpStatus(url: string, init: RequestInit = {}, timeoutMs = 2_000): Promise<number | undefined> {
  try {
    const response = await fetch(url, { ...init, signal: AbortSignal.timeout(timeoutMs) });
    await response.body?.cancel();
    return response.status;
  } catch {
    return undefined;
  }
}

/** Whether a TCP connection to host:port is accepted. */
export function portAnswers(host: string, port: number, timeoutMs = 1_000): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = net.connect({ host, port });
    const done = (answer: boolean) => {
      socket.destroy();
      resolve(answer);
    };
    socket.setTimeout(timeoutMs, () => done(false));
    socket.once("connect", () => done(true));
    socket.once("error", () => done(false));
  });
}
