"""apt-get, pip and git of the world's `nvidia/cuda:12.1.0-devel-ubuntu22.04` stand-in image.

There is no network in the test world, so these "install" exactly what the product's build recipe
asks for, from files baked into the image, and refuse anything else the way the real tools do:

- apt-get: `update`, then `install [-y] [--no-install-recommends] <pkg>...` of python3.10,
  python3-pip, openmpi-bin, libopenmpi-dev, git, git-lfs. Before `update` every package is unknown
  (the CUDA images ship without package lists); without -y the prompt is answered "no" (no tty);
  an unknown package is `E: Unable to locate package <name>` with exit code 100.
- pip/pip3/`python3 -m pip`: `install tensorrt_llm==0.8.0` with `--extra-index-url
  https://pypi.nvidia.com` (and optional -U/--upgrade, --pre, --no-cache-dir, -q) installs the
  world's tensorrt_llm stand-in and trtllm-build; anything else is "No matching distribution".
- git: `--version` and `lfs install` (git-lfs); other commands are not available here.
"""

from __future__ import annotations

import os
import re
import shutil
import site
import sys
from typing import List

from . import record

WORLD = os.environ.get("LLAMA3_TRT_WORLD_PREFIX", "/opt/llama3-trt-world")
STATE = os.environ.get("LLAMA3_TRT_WORLD_APT_STATE", "/var/lib/llama3-trt-world/apt")
LISTS_STAMP = "/var/lib/apt/lists/llama3-trt-world.stamp"

APT_PACKAGES = {
    "python3.10": "3.10.12-1~22.04.3",
    "python3-pip": "22.0.2+dfsg-1ubuntu0.4",
    "openmpi-bin": "4.1.2-2ubuntu1",
    "libopenmpi-dev": "4.1.2-2ubuntu1",
    "git": "1:2.34.1-1ubuntu1.10",
    "git-lfs": "3.0.2-1ubuntu0.2",
}
NVIDIA_INDEX = "https://pypi.nvidia.com"


def _link(target: str, link: str) -> None:
    os.makedirs(os.path.dirname(link), exist_ok=True)
    if os.path.lexists(link):
        os.remove(link)
    os.symlink(target, link)


def _install_package(name: str) -> None:
    bin_dir = os.path.join(WORLD, "bin")
    if name == "python3.10":
        # The world's interpreter stands in for 3.10 (it is the base image's python3).
        _link(shutil.which("python3") or "/usr/bin/python3", "/usr/bin/python3.10")
    elif name == "python3-pip":
        for exe in ("pip", "pip3"):
            _link(os.path.join(bin_dir, "pip"), f"/usr/bin/{exe}")
        pkg = "/usr/lib/python3/dist-packages/pip"
        os.makedirs(pkg, exist_ok=True)
        with open(os.path.join(pkg, "__init__.py"), "w") as f:
            f.write('__version__ = "22.0.2"\n')
        with open(os.path.join(pkg, "__main__.py"), "w") as f:
            f.write("import sys\nfrom llama3_trt_standin.devtools import pip_main\nsys.exit(pip_main())\n")
    elif name == "openmpi-bin":
        for exe in ("mpirun", "mpiexec"):
            _link(os.path.join(bin_dir, "mpirun"), f"/usr/bin/{exe}")
    elif name == "libopenmpi-dev":
        os.makedirs("/usr/lib/x86_64-linux-gnu/openmpi/include", exist_ok=True)
        open("/usr/lib/x86_64-linux-gnu/openmpi/include/mpi.h", "a").close()
    elif name == "git":
        _link(os.path.join(bin_dir, "git"), "/usr/bin/git")
    elif name == "git-lfs":
        _link(os.path.join(bin_dir, "git"), "/usr/bin/git-lfs")
    os.makedirs(STATE, exist_ok=True)
    with open(os.path.join(STATE, name), "w") as f:
        f.write(APT_PACKAGES[name] + "\n")


def _apt_fail(message: str) -> int:
    print(f"E: {message}", file=sys.stderr, flush=True)
    return 100


def apt_main(argv: List[str] = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    behaviour = record.start("apt-get", argv)
    yes = False
    words: List[str] = []
    i = 0
    while i < len(argv):
        a = argv[i]
        if a in ("-y", "--yes", "--assume-yes", "-qq", "-q", "--quiet", "--no-install-recommends",
                 "--no-install-suggests", "-yq", "-qy"):
            yes = yes or a in ("-y", "--yes", "--assume-yes", "-yq", "-qy")
        elif a == "-o":
            i += 1  # -o Option=value: accepted, no effect
        elif a.startswith("-"):
            return _apt_fail(f"Command line option '{a}' is not understood in combination with the other options.")
        else:
            words.append(a)
        i += 1
    if not words:
        print("apt 2.4.11 (amd64)\nUsage: apt-get [options] command", flush=True)
        return 1
    command, packages = words[0], words[1:]
    record.apply_common("apt-get", behaviour)
    if os.geteuid() != 0 and command in ("update", "install"):
        return _apt_fail("Could not open lock file /var/lib/dpkg/lock-frontend - open (13: Permission denied)")
    if command == "update":
        for n, suite in enumerate(["jammy InRelease", "jammy-updates InRelease", "jammy-security InRelease"], 1):
            print(f"Get:{n} http://archive.ubuntu.com/ubuntu {suite} [270 kB]")
        os.makedirs(os.path.dirname(LISTS_STAMP), exist_ok=True)
        open(LISTS_STAMP, "w").close()
        print("Reading package lists... Done", flush=True)
        return 0
    if command in ("clean", "autoclean", "autoremove"):
        return 0
    if command != "install":
        return _apt_fail(f"Invalid operation {command}")
    print("Reading package lists... Done\nBuilding dependency tree... Done\nReading state information... Done")
    have_lists = os.path.exists(LISTS_STAMP)
    for p in packages:
        if "=" in p:
            name, _, version = p.partition("=")
            if not have_lists or name not in APT_PACKAGES:
                return _apt_fail(f"Unable to locate package {name}")
            if version != APT_PACKAGES[name]:
                return _apt_fail(f"Version '{version}' for '{name}' was not found")
        elif not have_lists or p not in APT_PACKAGES:
            return _apt_fail(f"Unable to locate package {p}")
    names = [p.partition("=")[0] for p in packages]
    if not names:
        print("0 upgraded, 0 newly installed, 0 to remove and 0 not upgraded.", flush=True)
        return 0
    new = [n for n in names if not os.path.exists(os.path.join(STATE, n))]
    print("The following NEW packages will be installed:\n  " + " ".join(new))
    print(f"0 upgraded, {len(new)} newly installed, 0 to remove and 0 not upgraded.")
    if new and not yes:
        print("Do you want to continue? [Y/n] Abort.", flush=True)
        return 1
    for n in new:
        print(f"Setting up {n} ({APT_PACKAGES[n]}) ...")
        _install_package(n)
    sys.stdout.flush()
    return 0


# ----------------------------------------------------------------------------------------------

def _normalize(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def pip_main(argv: List[str] = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    behaviour = record.start("pip", argv)
    if not argv or argv[0] in ("-V", "--version"):
        print("pip 22.0.2 from /usr/lib/python3/dist-packages/pip (python 3.10)")
        return 0
    if argv[0] != "install":
        print(f"ERROR: unknown command \"{argv[0]}\" (the test world's pip only installs)", file=sys.stderr)
        return 1
    indexes: List[str] = []
    requirements: List[str] = []
    i = 1
    while i < len(argv):
        a = argv[i]
        if a in ("-U", "--upgrade", "--pre", "--no-cache-dir", "-q", "--quiet", "--no-deps", "--user"):
            pass
        elif a in ("--extra-index-url", "--index-url", "-i"):
            if i + 1 >= len(argv):
                print(f"\nUsage: pip install [options] <requirement specifier> ...\n\n{a} option requires 1 argument",
                      file=sys.stderr)
                return 2
            indexes.append(argv[i + 1].rstrip("/"))
            i += 1
        elif a.startswith("--extra-index-url=") or a.startswith("--index-url="):
            indexes.append(a.split("=", 1)[1].rstrip("/"))
        elif a.startswith("-"):
            print(f"\nUsage: pip install [options] <requirement specifier> ...\n\nno such option: {a}", file=sys.stderr)
            return 2
        else:
            requirements.append(a)
        i += 1
    if not requirements:
        print("ERROR: You must give at least one requirement to install (see \"pip help install\")", file=sys.stderr)
        return 1
    record.apply_common("pip", behaviour)
    for req in requirements:
        m = re.fullmatch(r"([A-Za-z0-9][A-Za-z0-9._-]*)\s*(==\s*([^\s,;]+))?", req)
        name = _normalize(m.group(1)) if m else req
        version = m.group(3) if m else None
        # tensorrt_llm 0.8.0 is published on NVIDIA's index only.
        if not (m and name == "tensorrt-llm" and version == "0.8.0" and NVIDIA_INDEX in indexes):
            print(f"ERROR: Could not find a version that satisfies the requirement {req} (from versions: none)",
                  file=sys.stderr)
            print(f"ERROR: No matching distribution found for {req}", file=sys.stderr, flush=True)
            return 1
    source = os.path.join(WORLD, "wheels", "tensorrt_llm")
    purelib = site.getsitepackages()[0]
    dest = os.path.join(purelib, "tensorrt_llm")
    print(f"Looking in indexes: https://pypi.org/simple, {NVIDIA_INDEX}")
    print("Collecting tensorrt_llm==0.8.0\n  Downloading https://pypi.nvidia.com/tensorrt-llm/tensorrt_llm-0.8.0-cp310-cp310-linux_x86_64.whl")
    if os.path.exists(dest):
        shutil.rmtree(dest)
    shutil.copytree(source, dest)
    os.makedirs("/usr/local/bin", exist_ok=True)
    _link(os.path.join(WORLD, "bin", "trtllm-build"), "/usr/local/bin/trtllm-build")
    print("Successfully installed tensorrt_llm-0.8.0", flush=True)
    return 0


# ----------------------------------------------------------------------------------------------

def git_main(argv: List[str] = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    as_lfs = os.path.basename(sys.argv[0]) == "git-lfs"
    tool = "git-lfs" if as_lfs else "git"
    behaviour = record.start(tool, argv)
    record.apply_common(tool, behaviour)
    if as_lfs:
        argv = ["lfs"] + argv
    if argv in (["--version"], ["version"]):
        print("git version 2.34.1")
        return 0
    if argv[:1] == ["lfs"]:
        if not os.path.exists(os.path.join(STATE, "git-lfs")):
            print("git: 'lfs' is not a git command. See 'git --help'.", file=sys.stderr)
            return 1
        if argv[1:] in (["install"], ["install", "--skip-repo"], ["install", "--system"]):
            print("Git LFS initialized.")
            return 0
        if argv[1:] in (["version"], ["--version"]):
            print("git-lfs/3.0.2 (GitHub; linux amd64; go 1.18.1)")
            return 0
    print(f"[llama3-trt world] git {' '.join(argv)}: not available in the test world's CUDA image "
          "(its git is a stand-in that only answers --version and lfs install)", file=sys.stderr)
    return 1
