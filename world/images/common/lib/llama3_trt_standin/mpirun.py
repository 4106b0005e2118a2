"""`mpirun` (Open MPI 4.x) as the test world needs it.

Accepted: --allow-run-as-root, -n/-np/-c N per app context, --oversubscribe, -x VAR[=value],
--bind-to X, --map-by X, --tag-output, --version, and MPMD app contexts separated by ':'.
Refuses to run as root without --allow-run-as-root (or OMPI_ALLOW_RUN_AS_ROOT=1 with
OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1), as Open MPI does. Starts every rank with OMPI_COMM_WORLD_RANK,
OMPI_COMM_WORLD_SIZE and the local equivalents, forwards SIGTERM/SIGINT to the ranks, and when a
rank fails, stops the others and exits with the first failure's code.

Not reproduced: slot counting (real mpirun refuses more ranks than cores without --oversubscribe;
GPU hosts always have the cores, the test machines may not).
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from typing import Dict, List, Optional, Tuple

from . import record

TOOL = "mpirun"
BAR = "-" * 74

_FLAGS = {"--allow-run-as-root", "--oversubscribe", "--tag-output", "--display-map", "-q", "--quiet"}
_WITH_VALUE = {"--bind-to", "--map-by", "--rank-by", "--mca", "-mca", "--hostfile", "-H", "--host"}
_COUNT = {"-n", "-np", "-c", "--np", "--n"}


def _usage_error(message: str) -> None:
    print(f"mpirun: Error: {message}", file=sys.stderr)
    print("Type 'mpirun --help' for usage.", file=sys.stderr, flush=True)
    sys.exit(1)


def parse(argv: List[str]) -> Tuple[dict, List[Tuple[int, List[str]]]]:
    """Global options and the app contexts [(count, command)]."""
    opts = {"allow_root": False, "exports": [], "oversubscribe": False}
    contexts: List[Tuple[int, List[str]]] = []
    segments: List[List[str]] = [[]]
    for a in argv:
        if a == ":":
            segments.append([])
        else:
            segments[-1].append(a)
    if len(segments) > 1 and not segments[-1]:
        # A trailing ':' (launch_triton_server.py ends its command line with one) closes nothing.
        segments.pop()
    for segment in segments:
        count: Optional[int] = None
        i = 0
        while i < len(segment) and segment[i].startswith("-"):
            a = segment[i]
            name, eq, inline = a.partition("=")
            if a in ("-h", "--help"):
                print("Usage: mpirun [OPTION]...  [PROGRAM]...\nStart the given program using Open RTE")
                sys.exit(0)
            if a in ("--version", "-V"):
                print("mpirun (Open MPI) 4.1.5\n\nReport bugs to http://www.open-mpi.org/community/help/")
                sys.exit(0)
            if a in _FLAGS:
                if a == "--allow-run-as-root":
                    opts["allow_root"] = True
                if a == "--oversubscribe":
                    opts["oversubscribe"] = True
                i += 1
                continue
            if name in _COUNT or name in _WITH_VALUE or name == "-x":
                if eq:
                    value = inline
                    i += 1
                else:
                    if i + 1 >= len(segment):
                        _usage_error(f"option \"{a}\" requires an argument")
                    value = segment[i + 1]
                    i += 2
                if name in _COUNT:
                    try:
                        count = int(value)
                    except ValueError:
                        _usage_error(f"invalid number of processes \"{value}\"")
                    if count <= 0:
                        _usage_error(f"invalid number of processes \"{value}\"")
                elif name == "-x":
                    opts["exports"].append(value)
                continue
            _usage_error(f"unknown option \"{a}\"")
        command = segment[i:]
        if not command:
            print(BAR, file=sys.stderr)
            print("No executable was specified on the mpirun command line.", file=sys.stderr)
            print(BAR, file=sys.stderr, flush=True)
            sys.exit(1)
        contexts.append((count if count is not None else (os.cpu_count() or 1), command))
    return opts, contexts


def _root_refusal() -> None:
    print(BAR, file=sys.stderr)
    print("mpirun has detected an attempt to run as root.\n\n"
          "Running as root is strongly discouraged. You can override this protection by adding the\n"
          "--allow-run-as-root option to the command line, or by setting both\n"
          "OMPI_ALLOW_RUN_AS_ROOT=1 and OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 in the environment.",
          file=sys.stderr)
    print(BAR, file=sys.stderr, flush=True)
    sys.exit(1)


def main(argv: Optional[List[str]] = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    behaviour = record.start(TOOL, argv)
    if not argv:
        _usage_error("no executable specified")
    opts, contexts = parse(argv)
    allowed_by_env = (os.environ.get("OMPI_ALLOW_RUN_AS_ROOT") == "1"
                      and os.environ.get("OMPI_ALLOW_RUN_AS_ROOT_CONFIRM") == "1")
    if os.geteuid() == 0 and not opts["allow_root"] and not allowed_by_env:
        _root_refusal()
    record.apply_common(TOOL, behaviour)

    size = sum(count for count, _ in contexts)
    base_env = dict(os.environ)
    for export in opts["exports"]:
        name, eq, value = export.partition("=")
        if eq:
            base_env[name] = value
        elif name not in os.environ:
            # Open MPI warns and carries on when an exported variable is not set.
            print(f"mpirun: warning: environment variable {name} is not set, not exported", file=sys.stderr)

    ranks: List[Tuple[int, List[str]]] = []
    for count, command in contexts:
        for _ in range(count):
            ranks.append((len(ranks), command))
    for rank, command in ranks:
        program = command[0]
        if shutil.which(program, path=base_env.get("PATH")) is None and not (os.sep in program and os.access(program, os.X_OK)):
            print(BAR, file=sys.stderr)
            print("mpirun was unable to find the specified executable file, and therefore\n"
                  f"did not launch the job. This error was first reported for process rank {rank}.\n\n"
                  f"   Executable: {program}", file=sys.stderr)
            print(BAR, file=sys.stderr, flush=True)
            return 1

    children: Dict[int, Tuple[int, subprocess.Popen]] = {}
    forwarded: List[int] = []

    def forward(signum, _frame):
        forwarded.append(signum)
        for _, p in children.values():
            try:
                p.send_signal(signum)
            except ProcessLookupError:
                pass

    signal.signal(signal.SIGTERM, forward)
    if not behaviour.ignore_sigint:
        signal.signal(signal.SIGINT, forward)

    for rank, command in ranks:
        env = dict(base_env)
        env.update({
            "OMPI_COMM_WORLD_RANK": str(rank),
            "OMPI_COMM_WORLD_SIZE": str(size),
            "OMPI_COMM_WORLD_LOCAL_RANK": str(rank),
            "OMPI_COMM_WORLD_LOCAL_SIZE": str(size),
            "OMPI_COMM_WORLD_NODE_RANK": "0",
            "PMIX_RANK": str(rank),
        })
        p = subprocess.Popen(command, env=env)
        children[p.pid] = (rank, p)

    failure: Optional[Tuple[int, int]] = None  # (rank, exit code)
    signalled: Optional[Tuple[int, int]] = None  # (rank, signal)
    stop_deadline: Optional[float] = None
    killed_by_forwarded: List[int] = []
    while children:
        try:
            pid, status = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            break
        if pid == 0:
            if stop_deadline is not None and time.monotonic() > stop_deadline:
                for _, p in children.values():
                    p.kill()
                stop_deadline = None
            time.sleep(0.05)
            continue
        if pid not in children:
            continue
        rank, p = children.pop(pid)
        p.returncode = os.waitstatus_to_exitcode(status)
        if os.WIFSIGNALED(status):
            if forwarded:
                killed_by_forwarded.append(os.WTERMSIG(status))
            elif signalled is None and failure is None:
                signalled = (rank, os.WTERMSIG(status))
        elif os.WEXITSTATUS(status) != 0 and failure is None and signalled is None:
            failure = (rank, os.WEXITSTATUS(status))
        if (failure or signalled) and stop_deadline is None and children:
            for _, other in children.values():
                try:
                    other.terminate()
                except ProcessLookupError:
                    pass
            stop_deadline = time.monotonic() + 10

    if signalled is not None:
        rank, sig = signalled
        print(BAR, file=sys.stderr)
        print(f"mpirun noticed that process rank {rank} exited on signal {sig} ({signal.Signals(sig).name}).",
              file=sys.stderr)
        print(BAR, file=sys.stderr, flush=True)
        return 128 + sig
    if failure is not None:
        rank, code = failure
        print(BAR, file=sys.stderr)
        print("Primary job terminated normally, but 1 process returned\n"
              "a non-zero exit code. Per user-direction, the job has been aborted.", file=sys.stderr)
        print(BAR, file=sys.stderr)
        print("mpirun detected that one or more processes exited with non-zero status, thus causing\n"
              f"the job to be terminated. The first process to do so was:\n\n"
              f"  Process name: [[0,1],{rank}]\n  Exit code:    {code}", file=sys.stderr)
        print(BAR, file=sys.stderr, flush=True)
        return code
    if killed_by_forwarded:
        return 128 + killed_by_forwarded[0]
    return 0


if __name__ == "__main__":
    sys.exit(main())
