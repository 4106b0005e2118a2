"""The requests the stand-in's "engine" holds (queued for a slot or generating), shared by the HTTP
and gRPC paths, and how one of them runs: a slot of Pace, its responses on ttft/itl deadlines,
a stop by request id (TensorRT-LLM v0.8.0's `stop` input), and a client that went away.

No protobuf or grpc here (host tests import this module).

Request ids are the TensorRT-LLM backend's uint64: 0 for a request without one (every HTTP
request: Triton 24.03's generate endpoint cannot set an id); those are not registered and cannot
be stopped. Messages are the v0.8.0 backend's (model_instance_state.cc / the executor), adapted:
"already in progress" is refused by the stand-in as the backend does for an id it still holds.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from typing import Callable, Dict, Optional, Sequence


class RequestError(Exception):
    pass


@dataclass
class Job:
    id: int
    total: int = 0  # tokens this request would generate
    sent: int = 0  # responses given to the client
    tokens: int = 0  # tokens generated so far (sent or not)
    started: bool = False
    stopped: threading.Event = field(default_factory=threading.Event)
    client_gone: bool = False


class Registry:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._jobs: Dict[int, Job] = {}

    def admit(self, request_id: int) -> Job:
        with self._lock:
            if request_id != 0 and request_id in self._jobs:
                raise RequestError(f"requestId {request_id} is already in progress, request is ignored.")
            job = Job(request_id)
            if request_id != 0:
                self._jobs[request_id] = job
            return job

    def stop(self, request_id: int) -> Job:
        with self._lock:
            if request_id == 0:
                raise RequestError("Cannot send stop request without specifying a request_id")
            job = self._jobs.get(request_id)
            if job is None:
                raise RequestError(f"Received stop request for requestId {request_id} but it's not active "
                                   "(might be completed already).")
            job.stopped.set()
            return job

    def release(self, job: Job) -> None:
        with self._lock:
            if job.id != 0 and self._jobs.get(job.id) is job:
                del self._jobs[job.id]

    def active(self) -> Dict[int, Job]:
        with self._lock:
            return dict(self._jobs)


# What run() reports: how the request ended.
DONE, STOPPED, DROPPED = "done", "stopped", "dropped"


def run(pace, registry: Registry, job: Job, ticks: Sequence[int], send: Callable[[int], bool],
        on_stop: Optional[Callable[[], None]] = None, on_drop: Optional[Callable[[], None]] = None,
        poll_seconds: float = 0.02) -> str:
    """Runs an admitted job: waits for a slot of `pace` (a queued job that is stopped is dropped:
    `on_drop`), then for each response i sends it at the deadline of token `ticks[i]` (`send(i)`
    returns False once the client is gone: pacing goes on, nothing more is sent, as the engine
    does not notice). A stop ends it at its next deadline: `on_stop` (the final response) and the
    slot is free at once. The job leaves the registry when it ends, whichever way."""
    try:
        while not pace.slots.acquire(timeout=poll_seconds):
            if job.stopped.is_set():
                if on_drop:
                    on_drop()
                return DROPPED
        try:
            if job.stopped.is_set():
                if on_drop:
                    on_drop()
                return DROPPED
            job.started = True
            start = time.monotonic()
            for i, tick in enumerate(ticks):
                if job.stopped.wait(max(0.0, pace.deadline(start, tick) - time.monotonic())):
                    job.tokens = tick
                    if on_stop:
                        on_stop()
                    return STOPPED
                job.tokens = tick + 1
                if not job.client_gone:
                    if send(i):
                        job.sent += 1
                    else:
                        job.client_gone = True
            return DONE
        finally:
            pace.slots.release()
    finally:
        registry.release(job)
