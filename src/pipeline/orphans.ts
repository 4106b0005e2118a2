import { hostname } from "node:os";
import type { ContainerSummary } from "../docker/docker-client.ts";
import { labelKeys } from "../docker/labels.ts";
import { isAlive } from "./lock.ts";

/**
 * The one definition of an orphan: a container of ours whose owning CLI process is gone (same
 * host, dead pid), as `kill -9` leaves them (reliability D4, case 29). A container of a live
 * process (a concurrent `ask --local`, a build in another shell) is never one, and neither is
 * one started on another host, whose pid cannot be checked from here. The server of `serve
 * --detach` outlives its CLI on purpose: it is `stop`'s to end, not an orphan.
 */
export function isOrphan(container: Pick<ContainerSummary, "labels">, here: string = hostname()): boolean {
  const labels = container.labels;
  if (labels[labelKeys.role] === "server") return false;
  const pid = Number(labels[labelKeys.pid]);
  if (labels[labelKeys.host] !== here || !Number.isInteger(pid) || pid <= 0) return false;
  return pid !== process.pid && !isAlive(pid);
}
