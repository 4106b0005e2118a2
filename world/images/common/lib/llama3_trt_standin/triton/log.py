"""Triton's log line format: `I0501 12:34:56.789012 123 server.cc:662] message`."""

from __future__ import annotations

import datetime
import os
import sys
import threading

_lock = threading.Lock()
_target = sys.stderr


def set_file(path: str) -> None:
    global _target
    _target = open(path, "a", buffering=1)


def _emit(level: str, where: str, message: str) -> None:
    now = datetime.datetime.now()
    line = f"{level}{now:%m%d} {now:%H:%M:%S}.{now.microsecond:06d} {os.getpid()} {where}] {message}\n"
    with _lock:
        _target.write(line)
        _target.flush()


def info(where: str, message: str) -> None:
    _emit("I", where, message)


def warning(where: str, message: str) -> None:
    _emit("W", where, message)


def error(where: str, message: str) -> None:
    _emit("E", where, message)


def table(where: str, headers, rows) -> None:
    widths = [max(len(str(h)), *(len(str(r[i])) for r in rows)) if rows else len(str(h)) for i, h in enumerate(headers)]
    bar = "+" + "+".join("-" * (w + 2) for w in widths) + "+"
    lines = [bar, "| " + " | ".join(str(h).ljust(w) for h, w in zip(headers, widths)) + " |", bar]
    for r in rows:
        lines.append("| " + " | ".join(str(c).ljust(w) for c, w in zip(r, widths)) + " |")
    lines.append(bar)
    info(where, "\n" + "\n".join(lines) + "\n")
