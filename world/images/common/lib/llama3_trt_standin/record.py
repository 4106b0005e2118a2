"""Invocation recording and test-controlled behaviour knobs.

Contract (world/README.md, "Stand-in programs"): before anything else a stand-in records
`{tool, argv, cwd, time}`
  - to `$LLAMA3_TRT_WORLD_RECORDER` (POST <url>/invocations, JSON) when set, and exits 3 when the
    recorder cannot be reached: a silent stand-in would let "no stand-in ran" tests pass for the
    wrong reason;
  - else as one JSON line appended to `$LLAMA3_TRT_WORLD_INVOCATIONS`;
  - else it exits 3: it was started outside the test world.

The recorder's answer may carry knobs a test set (world/standins/README.md):
  {"behaviour": {"sleepSeconds": 60, "exitCode": 1, "oom": true, "ignoreSigint": true, "ignoreSigterm": true,
                 "neverReady": true, "dieAtStart": true, "ttftMs": 200, "itlMs": 20, "maxInFlight": 2}}
The product controls the environment of what it runs, so knobs cannot come from variables.
"""

from __future__ import annotations

import datetime
import json
import os
import signal
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from typing import NoReturn, Optional

EXIT_OUTSIDE_WORLD = 3
RECORDER_TIMEOUT_SECONDS = 10

_KNOBS = {
    "sleepSeconds": (int, float),
    "exitCode": (int,),
    "oom": (bool,),
    "ignoreSigint": (bool,),
    "ignoreSigterm": (bool,),
    "neverReady": (bool,),
    "dieAtStart": (bool,),
    # tritonserver's pace, for `bench`: first token this long after a request got a slot, then one
    # token every itlMs; at most maxInFlight requests generate at once (the rest wait for a slot).
    "ttftMs": (int, float),
    "itlMs": (int, float),
    "maxInFlight": (int,),
}


@dataclass(frozen=True)
class Behaviour:
    sleep_seconds: float = 0
    exit_code: Optional[int] = None
    oom: bool = False
    ignore_sigint: bool = False
    ignore_sigterm: bool = False
    never_ready: bool = False
    die_at_start: bool = False
    ttft_ms: Optional[float] = None
    itl_ms: Optional[float] = None
    max_in_flight: Optional[int] = None


def _fail(tool: str, message: str) -> NoReturn:
    print(f"[llama3-trt world] {tool}: {message}", file=sys.stderr, flush=True)
    sys.exit(EXIT_OUTSIDE_WORLD)


def _now() -> str:
    return datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _cwd() -> str:
    try:
        return os.getcwd()
    except OSError:
        # The directory was removed under us; record what the shell believed it was.
        return os.environ.get("PWD", "")


def parse_behaviour(tool: str, body: bytes) -> Behaviour:
    """The recorder's answer: empty, or a JSON object with an optional "behaviour" object."""
    text = body.decode("utf-8", "replace").strip()
    if not text:
        return Behaviour()
    try:
        answer = json.loads(text)
    except json.JSONDecodeError as e:
        _fail(tool, f"the recorder answered something that is not JSON ({e}): {text[:200]!r}")
    if not isinstance(answer, dict):
        _fail(tool, f"the recorder answered a JSON {type(answer).__name__}, not an object")
    knobs = answer.get("behaviour")
    if knobs is None:
        return Behaviour()
    if not isinstance(knobs, dict):
        _fail(tool, "the recorder's 'behaviour' is not an object")
    for key, value in knobs.items():
        # A misspelt knob would silently do nothing and the test would pass for the wrong reason.
        if key not in _KNOBS:
            _fail(tool, f"unknown behaviour knob {key!r} (known: {', '.join(sorted(_KNOBS))})")
        allowed = _KNOBS[key]
        if value is None:
            continue
        if isinstance(value, bool) and bool not in allowed:
            _fail(tool, f"behaviour knob {key!r} must be a number, got {value!r}")
        if not isinstance(value, allowed):
            _fail(tool, f"behaviour knob {key!r} has the wrong type: {value!r}")
        if key in ("ttftMs", "itlMs", "maxInFlight") and (value < 0 or (key == "maxInFlight" and value < 1)):
            _fail(tool, f"behaviour knob {key!r} is out of range: {value!r}")
    return Behaviour(
        sleep_seconds=float(knobs.get("sleepSeconds") or 0),
        exit_code=knobs.get("exitCode"),
        oom=bool(knobs.get("oom")),
        ignore_sigint=bool(knobs.get("ignoreSigint")),
        ignore_sigterm=bool(knobs.get("ignoreSigterm")),
        never_ready=bool(knobs.get("neverReady")),
        die_at_start=bool(knobs.get("dieAtStart")),
        ttft_ms=None if knobs.get("ttftMs") is None else float(knobs["ttftMs"]),
        itl_ms=None if knobs.get("itlMs") is None else float(knobs["itlMs"]),
        max_in_flight=knobs.get("maxInFlight"),
    )


def record(tool: str, argv: Optional[list] = None) -> Behaviour:
    """Record this invocation; return the knobs the recorder answered (none without a recorder)."""
    entry = {
        "tool": tool,
        "argv": list(sys.argv[1:] if argv is None else argv),
        "cwd": _cwd(),
        "time": _now(),
    }
    recorder = os.environ.get("LLAMA3_TRT_WORLD_RECORDER", "")
    if recorder:
        url = recorder.rstrip("/") + "/invocations"
        request = urllib.request.Request(
            url,
            data=json.dumps(entry).encode("utf-8"),
            method="POST",
            headers={"content-type": "application/json"},
        )
        try:
            with urllib.request.urlopen(request, timeout=RECORDER_TIMEOUT_SECONDS) as response:
                body = response.read()
        except urllib.error.HTTPError as e:
            _fail(tool, f"the recorder at {url} answered HTTP {e.code}")
        except (urllib.error.URLError, OSError, ValueError) as e:
            _fail(tool, f"cannot reach the recorder at {url}: {e}")
        return parse_behaviour(tool, body)
    path = os.environ.get("LLAMA3_TRT_WORLD_INVOCATIONS", "")
    if path:
        line = (json.dumps(entry) + "\n").encode("utf-8")
        try:
            # One write on an O_APPEND descriptor: lines of concurrent ranks do not interleave.
            fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
            try:
                os.write(fd, line)
            finally:
                os.close(fd)
        except OSError as e:
            _fail(tool, f"cannot append to $LLAMA3_TRT_WORLD_INVOCATIONS ({path}): {e}")
        return Behaviour()
    _fail(
        tool,
        "stand-in started outside the test world: neither LLAMA3_TRT_WORLD_RECORDER nor "
        "LLAMA3_TRT_WORLD_INVOCATIONS is set",
    )


def apply_signals(behaviour: Behaviour) -> None:
    if behaviour.ignore_sigint:
        # A PID-1 process without a handler ignores SIGINT; Python installs one by default, so
        # reproduce the real program's deafness explicitly.
        signal.signal(signal.SIGINT, signal.SIG_IGN)
    if behaviour.ignore_sigterm:
        # A tool busy in native code can take its time over SIGTERM: `docker stop` then waits its
        # grace period, which is when a second Ctrl-C matters.
        signal.signal(signal.SIGTERM, signal.SIG_IGN)


def apply_common(tool: str, behaviour: Behaviour) -> None:
    """Knobs every stand-in honours, applied where the real tool would spend its time:
    SIGINT deafness, then the sleep, then the OOM kill, then the forced exit code."""
    apply_signals(behaviour)
    if behaviour.sleep_seconds > 0:
        deadline = time.monotonic() + behaviour.sleep_seconds
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                break
            time.sleep(min(left, 1.0))
    if behaviour.oom:
        print(f"[llama3-trt world] {tool}: simulating the kernel's OOM killer (SIGKILL)", file=sys.stderr, flush=True)
        sys.stdout.flush()
        os.kill(os.getpid(), signal.SIGKILL)
    if behaviour.exit_code is not None:
        print(f"[llama3-trt world] {tool}: exiting with code {behaviour.exit_code} as the test asked", file=sys.stderr, flush=True)
        sys.exit(behaviour.exit_code)


def start(tool: str, argv: Optional[list] = None) -> Behaviour:
    """Record, and return the knobs for the caller to apply after its argument parsing."""
    return record(tool, argv)
