import { createServer } from "node:net";

/**
 * Whether something already listens on host:port, found by trying to bind it the way Docker's
 * port publishing will (reliability case 31): before anything starts, not after.
 */
export function portInUse(host: string, port: number): Promise<boolean> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once("error", (error: NodeJS.ErrnoException) => {
      if (error.code === "EADDRINUSE" || error.code === "EACCES") resolve(true);
      else reject(error);
    });
    server.listen({ host, port, exclusive: true }, () => server.close(() => resolve(false)));
  });
}
