"""tritonserver's command line: getopt_long style, '--opt=value' or '--opt value'.

The option names are Triton 2.44's (those launch_triton_server.py v0.8.0 passes and the other
common ones); an unknown option ends the server with a usage message like the real one's.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from typing import Dict, List, Optional

# kind: "none" (no argument), "bool", "int", "float", "str"
OPTIONS: Dict[str, str] = {
    "--help": "none",
    "--model-repository": "str",
    "--model-store": "str",
    "--http-port": "int",
    "--grpc-port": "int",
    "--metrics-port": "int",
    "--http-address": "str",
    "--grpc-address": "str",
    "--metrics-address": "str",
    "--allow-http": "bool",
    "--allow-grpc": "bool",
    "--allow-metrics": "bool",
    "--allow-gpu-metrics": "bool",
    "--allow-cpu-metrics": "bool",
    "--allow-sagemaker": "bool",
    "--allow-vertex-ai": "bool",
    "--disable-auto-complete-config": "none",
    "--strict-model-config": "bool",
    "--strict-readiness": "bool",
    "--exit-on-error": "bool",
    "--exit-timeout-secs": "int",
    "--backend-config": "str",
    "--backend-directory": "str",
    "--repoagent-directory": "str",
    "--model-control-mode": "str",
    "--load-model": "str",
    "--repository-poll-secs": "int",
    "--model-load-thread-count": "int",
    "--log-verbose": "int",
    "--log-info": "bool",
    "--log-warning": "bool",
    "--log-error": "bool",
    "--log-format": "str",
    "--log-file": "str",
    "--id": "str",
    "--pinned-memory-pool-byte-size": "int",
    "--cuda-memory-pool-byte-size": "str",
    "--min-supported-compute-capability": "float",
    "--rate-limit": "str",
    "--http-thread-count": "int",
    "--buffer-manager-thread-count": "int",
    "--metrics-interval-ms": "int",
    "--trace-config": "str",
    "--cache-config": "str",
    "--response-cache-byte-size": "int",
}

USAGE = """Usage: tritonserver [options]
  --model-repository <string>    Path to model repository directory. May be specified multiple times.
  --http-port <integer>          The port for the server to listen on for HTTP requests.
  --grpc-port <integer>          The port for the server to listen on for GRPC requests.
  --metrics-port <integer>       The port reporting prometheus metrics.
  --http-address <string>        The address for the http server to bind to. Default is 0.0.0.0
  --model-control-mode <string>  Specify the mode for model management: "none", "poll" or "explicit".
  --load-model <string>          Name of the model to be loaded on server startup (explicit mode).
  --disable-auto-complete-config Disable auto-completion of model configurations.
  --backend-config <<string>,<string>=<string>>  Backend-specific configuration setting.
  --log-verbose <integer>        Set verbose logging level.
  --log-file <string>            Set the name of the log output file.
  (the test world's stand-in; see test/fixtures/trtllm-v0.8.0-flags.json for the full list)"""


class OptionError(Exception):
    pass


@dataclass
class Options:
    model_repositories: List[str] = field(default_factory=list)
    http_port: int = 8000
    grpc_port: int = 8001
    metrics_port: int = 8002
    http_address: str = "0.0.0.0"
    grpc_address: str = "0.0.0.0"
    metrics_address: str = "0.0.0.0"
    allow_http: bool = True
    allow_grpc: bool = True
    allow_metrics: bool = True
    disable_auto_complete_config: bool = False
    strict_readiness: bool = True
    exit_on_error: bool = True
    backend_config: Dict[str, Dict[str, str]] = field(default_factory=dict)
    model_control_mode: str = "none"
    load_models: List[str] = field(default_factory=list)
    log_verbose: int = 0
    log_file: Optional[str] = None
    help: bool = False


def _bool(name: str, value: str) -> bool:
    v = value.lower()
    if v in ("true", "on", "1"):
        return True
    if v in ("false", "off", "0"):
        return False
    raise OptionError(f"invalid value for bool option {name}: {value}")


def parse(argv: List[str]) -> Options:
    opts = Options()
    i = 0
    while i < len(argv):
        arg = argv[i]
        if not arg.startswith("--"):
            raise OptionError(f"Unexpected argument: {arg}")
        name, eq, inline = arg.partition("=")
        kind = OPTIONS.get(name)
        if kind is None:
            raise OptionError(f"unrecognized option '{name}'")
        if kind == "none":
            if eq:
                raise OptionError(f"option '{name}' doesn't allow an argument")
            value = None
            i += 1
        elif eq:
            value = inline
            i += 1
        else:
            if i + 1 >= len(argv):
                raise OptionError(f"option '{name}' requires an argument")
            value = argv[i + 1]
            i += 2
        try:
            if kind == "int":
                parsed = int(value)
            elif kind == "float":
                parsed = float(value)
            elif kind == "bool":
                parsed = _bool(name, value)
            else:
                parsed = value
        except ValueError:
            raise OptionError(f"invalid argument for {name}: {value}")

        if name == "--help":
            opts.help = True
        elif name in ("--model-repository", "--model-store"):
            opts.model_repositories.append(parsed)
        elif name == "--http-port":
            opts.http_port = parsed
        elif name == "--grpc-port":
            opts.grpc_port = parsed
        elif name == "--metrics-port":
            opts.metrics_port = parsed
        elif name == "--http-address":
            opts.http_address = parsed
        elif name == "--grpc-address":
            opts.grpc_address = parsed
        elif name == "--metrics-address":
            opts.metrics_address = parsed
        elif name == "--allow-http":
            opts.allow_http = parsed
        elif name == "--allow-grpc":
            opts.allow_grpc = parsed
        elif name == "--allow-metrics":
            opts.allow_metrics = parsed
        elif name == "--disable-auto-complete-config":
            opts.disable_auto_complete_config = True
        elif name == "--strict-readiness":
            opts.strict_readiness = parsed
        elif name == "--exit-on-error":
            opts.exit_on_error = parsed
        elif name == "--backend-config":
            backend, comma, setting = parsed.partition(",")
            if not comma:
                backend, setting = "", parsed
            key, has_eq, val = setting.partition("=")
            if not has_eq or not key:
                raise OptionError("--backend-config option format is '<backend name>,<setting>=<value>'. "
                                  f"Got {parsed}")
            opts.backend_config.setdefault(backend, {})[key] = val
        elif name == "--model-control-mode":
            if parsed not in ("none", "poll", "explicit"):
                raise OptionError(f"invalid argument for --model-control-mode: {parsed}")
            opts.model_control_mode = parsed
        elif name == "--load-model":
            opts.load_models.append(parsed)
        elif name == "--log-verbose":
            opts.log_verbose = parsed
        elif name == "--log-file":
            opts.log_file = parsed
        # Every other known option is accepted and has no effect in the test world.
    for port_name in ("http_port", "grpc_port", "metrics_port"):
        port = getattr(opts, port_name)
        if not 0 <= port <= 65535:
            raise OptionError(f"invalid argument for --{port_name.replace('_', '-')}: {port}")
    return opts


def fail_usage(program: str, error: OptionError) -> None:
    print(f"{program}: {error}", file=sys.stderr)
    print(USAGE, file=sys.stderr, flush=True)
    sys.exit(1)
