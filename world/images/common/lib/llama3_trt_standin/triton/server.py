"""`tritonserver` stand-in: command line, model repository loading, KServe v2 HTTP API.

Rank 0 (or a server started without mpirun) loads its models and serves HTTP on --http-address
(default 0.0.0.0) and --http-port, gRPC streaming inference on --grpc-address:--grpc-port
(grpc_server.py) and metrics, as the real server does.
A rank > 0 of an mpirun world loads what it is told (launch_triton_server.py passes
--model-control-mode=explicit --load-model=tensorrt_llm) and then waits: the real TensorRT-LLM
backend's worker ranks block inside the model, never reaching the HTTP service.
"""

from __future__ import annotations

import json
import os
import re
import signal
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Dict, Optional

from .. import record
from . import active, generate, log, options, repository

TOOL = "tritonserver"
VERSION = "2.44.0"
EXTENSIONS = ["classification", "sequence", "model_repository", "model_repository(unload_dependents)",
              "schedule_policy", "model_configuration", "system_shared_memory", "cuda_shared_memory",
              "binary_tensor_data", "parameters", "statistics", "trace", "logging"]


class Pace:
    """How fast the stand-in "generates", for `bench` (knobs ttftMs, itlMs, maxInFlight).

    Like TensorRT-LLM's in-flight batcher, at most `slots` requests generate at once (the engine's
    max_batch_size unless maxInFlight says otherwise); the others wait for a slot. A request's
    first token comes ttft after it got its slot, token i at ttft + i * itl: deadlines from one
    start, so a late wake-up on a loaded machine does not add up over the answer.
    """

    DEFAULT_ITL_SECONDS = 0.002

    def __init__(self, behaviour: record.Behaviour, models: Dict[str, repository.Model]):
        self.paced = behaviour.ttft_ms is not None or behaviour.itl_ms is not None
        self.ttft = (behaviour.ttft_ms or 0.0) / 1000.0
        self.itl = self.DEFAULT_ITL_SECONDS if behaviour.itl_ms is None else behaviour.itl_ms / 1000.0
        engine_batch = [m.info["engine_config"]["build_config"].get("max_batch_size")
                        for m in models.values() if m.ready and "engine_config" in m.info]
        self.slots_total = behaviour.max_in_flight or (engine_batch[0] if engine_batch and engine_batch[0] else 1)
        self.slots = threading.BoundedSemaphore(self.slots_total)

    def deadline(self, start: float, token_index: int) -> float:
        return start + self.ttft + token_index * self.itl

    def wait_until(self, start: float, token_index: int) -> None:
        delay = self.deadline(start, token_index) - time.monotonic()
        if delay > 0:
            time.sleep(delay)


class State:
    def __init__(self, models: Dict[str, repository.Model], never_ready: bool, strict_readiness: bool, pace: Pace):
        self.models = models
        self.never_ready = never_ready
        self.strict_readiness = strict_readiness
        self.shutting_down = False
        self.pace = pace
        # Requests queued or generating, by TensorRT-LLM request id (HTTP's and id-less gRPC
        # requests are id 0: not registered, cannot be stopped).
        self.registry = active.Registry()

    def server_ready(self) -> bool:
        if self.never_ready or self.shutting_down:
            return False
        if self.strict_readiness:
            return all(m.ready for m in self.models.values())
        return True

    def model(self, name: str, version: Optional[str]) -> repository.Model:
        m = self.models.get(name)
        if m is None or (version not in (None, "") and version != m.version):
            raise generate.RequestError(f"Request for unknown model: '{name}' is not found")
        if not m.ready:
            raise generate.RequestError(f"Request for unknown model: '{name}' has no available versions")
        if self.never_ready:
            raise generate.RequestError(f"Request for unknown model: '{name}' has no available versions")
        return m


_MODEL_ROUTE = re.compile(r"^/v2/models/([^/]+)(?:/versions/([^/]+))?(/ready|/config|/generate|/generate_stream|/infer)?/?$")


def _handler(state: State):
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        server_version = "triton"

        def log_message(self, fmt, *args):  # Triton does not log each request.
            pass

        def _send(self, status: int, body: Optional[dict] = None) -> None:
            data = b"" if body is None else json.dumps(body).encode("utf-8")
            self.send_response(status)
            if body is not None:
                self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def _error(self, message: str, status: int = 400) -> None:
            self._send(status, {"error": message})

        def do_GET(self):
            path = self.path.split("?", 1)[0]
            if path == "/v2/health/live":
                return self._send(200 if not state.shutting_down else 400)
            if path == "/v2/health/ready":
                return self._send(200 if state.server_ready() else 400)
            if path in ("/v2", "/v2/"):
                return self._send(200, {"name": "triton", "version": VERSION, "extensions": EXTENSIONS})
            m = _MODEL_ROUTE.match(path)
            if not m:
                return self._error("Not Found", 404)
            name, version, action = m.group(1), m.group(2), m.group(3)
            if action == "/ready":
                model = state.models.get(name)
                ok = model is not None and model.ready and not state.never_ready and version in (None, "", model.version)
                return self._send(200 if ok else 400)
            try:
                model = state.model(name, version)
            except generate.RequestError as e:
                return self._error(str(e))
            if action == "/config":
                from google.protobuf import json_format
                return self._send(200, json_format.MessageToDict(model.config, preserving_proto_field_name=True))
            if action:
                return self._error("Not Found", 404)
            from . import model_config_pb2 as mc

            def tensor(t):
                dims = list(t.dims)
                if model.config.max_batch_size > 0:
                    dims = [-1] + dims
                return {"name": t.name, "datatype": generate.TRITON_DATATYPE.get(mc.DataType.Name(t.data_type), "BYTES"),
                        "shape": dims}
            return self._send(200, {
                "name": model.name,
                "versions": [model.version],
                "platform": model.config.platform or model.config.backend,
                "inputs": [tensor(t) for t in model.config.input],
                "outputs": [tensor(t) for t in model.config.output],
            })

        def do_POST(self):
            path = self.path.split("?", 1)[0]
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length) if length > 0 else b""
            m = _MODEL_ROUTE.match(path)
            if not m or m.group(3) not in ("/generate", "/generate_stream", "/infer"):
                return self._error("Not Found", 404)
            name, version, action = m.group(1), m.group(2), m.group(3)
            try:
                model = state.model(name, version)
                if action == "/infer":
                    raise generate.RequestError("the test world's tritonserver serves the generate extension only")
                names = {i.name for i in model.config.input}
                if not (model.config.platform == "ensemble" or (
                        model.config.backend == "python" and {"text_input", "max_tokens"} <= names)):
                    raise generate.RequestError(f"the test world's tritonserver generates through the ensemble or "
                                                f"the BLS model only, not '{name}'")
                try:
                    body = json.loads(raw.decode("utf-8") or "null")
                except (UnicodeDecodeError, json.JSONDecodeError) as e:
                    raise generate.RequestError(f"failed to parse the request JSON buffer: {e}")
                inputs = generate.parse_inputs(model, body)
                streamed, chunks, n_tokens, _ = generate.run(state.models, model, inputs, action == "/generate_stream")
            except generate.RequestError as e:
                if action == "/generate_stream" and "decoupled" in str(e):
                    # The backend's error arrives as an event of an accepted stream.
                    return self._sse([{"error": str(e)}])
                return self._error(str(e))
            pace = state.pace
            job = state.registry.admit(0)  # 24.03's generate endpoint cannot set a request id
            if action == "/generate":
                text = "".join(chunks)
                body_out = generate.response(model, text, n_tokens, None)
                # Unpaced, the answer comes at once; paced, when its last token would.
                active.run(pace, state.registry, job, [max(n_tokens - 1, 0)] if pace.paced else [0],
                           lambda _i: self._send(200, body_out) or True)
                return None
            events = [generate.response(model, c, 1 if streamed else n_tokens, None) for c in chunks]
            return self._sse(events, job)

        def _sse_head(self) -> None:
            self.send_response(200)
            self.send_header("Content-Type", "text/event-stream")
            self.send_header("Cache-Control", "no-cache")
            self.send_header("Connection", "close")
            self.end_headers()
            self.close_connection = True

        def _sse(self, events, job: Optional[active.Job] = None) -> None:
            if job is None:  # an error event, outside any slot
                self._sse_head()
                for e in events:
                    self.wfile.write(b"data: " + json.dumps(e).encode("utf-8") + b"\n\n")
                self.wfile.flush()
                return

            def send(i: int) -> bool:
                try:
                    if i == 0:
                        self._sse_head()
                    self.wfile.write(b"data: " + json.dumps(events[i]).encode("utf-8") + b"\n\n")
                    self.wfile.flush()
                    return True
                except (BrokenPipeError, ConnectionResetError):
                    # Triton 24.03 cancels requests only for gRPC and C API clients (and the
                    # TensorRT-LLM v0.8.0 backend would not notice anyway): over HTTP the request
                    # generates on, holding its batch slot, and its responses go nowhere.
                    log.info("http_server.cc:0", f"[llama3-trt world] generate_stream: the client closed the connection "
                                                 f"after {i} of {len(events)} responses; the request runs on to its end "
                                                 "(Triton 24.03 cannot cancel an HTTP request)")
                    return False
            active.run(state.pace, state.registry, job, range(len(events)), send)
            if job.client_gone:
                log.info("http_server.cc:0", f"[llama3-trt world] generate_stream: the request whose client left "
                                             f"ran to its end ({len(events)} responses); its slot is free")

    return Handler


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    # Triton's HTTP endpoint binds with a listen backlog of 1024 (evhtp_bind_socket in
    # http_server.cc); socketserver's default of 5 would make many clients connecting at once wait
    # for SYN retransmits, a delay no real server shows.
    request_queue_size = 1024


def _metrics_server(address: str, port: int, state: State) -> ThreadingHTTPServer:
    class Metrics(BaseHTTPRequestHandler):
        def log_message(self, fmt, *args):
            pass

        def do_GET(self):
            lines = ["# HELP nv_inference_request_success Number of successful inference requests",
                     "# TYPE nv_inference_request_success counter"]
            for m in state.models.values():
                if m.ready:
                    lines.append(f'nv_inference_request_success{{model="{m.name}",version="{m.version}"}} 0')
            data = ("\n".join(lines) + "\n").encode()
            self.send_response(200)
            self.send_header("Content-Type", "text/plain; charset=utf-8")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)
    try:
        srv = _Server((address, port), Metrics)
    except OSError as e:
        raise OSError(f"failed to start Metrics service: Unavailable - Socket '{address}:{port}' already in use ({e.strerror})")
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    return srv


def _fatal(message: str) -> None:
    print(f"error: creating server: {message}", file=sys.stderr, flush=True)
    sys.exit(1)


def main(argv=None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    behaviour = record.start(TOOL, argv)
    program = "/opt/tritonserver/bin/tritonserver"
    try:
        opts = options.parse(argv)
    except options.OptionError as e:
        options.fail_usage(program, e)
    if opts.help:
        print(options.USAGE)
        return 0
    if opts.log_file:
        log.set_file(opts.log_file)
    record.apply_signals(behaviour)

    stop = threading.Event()
    received = []

    def on_signal(signum, _frame):
        received.append(signum)
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    if not behaviour.ignore_sigint:
        signal.signal(signal.SIGINT, on_signal)

    rank = int(os.environ.get("OMPI_COMM_WORLD_RANK", "0"))
    world_size = int(os.environ.get("OMPI_COMM_WORLD_SIZE", "1"))
    log.info("pinned_memory_manager.cc:275", "Pinned memory pool is created at '0x7f0000000000' with size 268435456")
    if behaviour.die_at_start:
        log.error("server.cc:251", "[llama3-trt world] dying at start as the test asked")
        return 1
    if not opts.model_repositories:
        _fatal("Invalid argument - --model-repository must be specified")
    for backend, settings in opts.backend_config.items():
        for key, value in settings.items():
            log.info("backend_config.cc:0", f"backend-config {backend or '<global>'}: {key}={value}")

    record.apply_common(TOOL, behaviour)  # sleepSeconds: a slow model load; exitCode; oom

    try:
        models = repository.load(opts.model_repositories, opts.model_control_mode, opts.load_models, rank, world_size)
    except repository.LoadError as e:
        log.error("model_repository_manager.cc:1335", str(e))
        _fatal(f"Internal - {e}")
    rows = [(m.name, m.version, "READY" if m.ready else f"UNAVAILABLE: {m.reason}") for m in models.values()]
    log.table("server.cc:662", ["Model", "Version", "Status"], sorted(rows))
    failed = [m for m in models.values() if not m.ready]
    if failed and opts.exit_on_error:
        log.info("server.cc:307", "Waiting for in-flight requests to complete.")
        _fatal("Internal - failed to load all models")
    state = State(models, behaviour.never_ready, opts.strict_readiness, Pace(behaviour, models))

    servers = []
    if rank > 0:
        log.info("model_instance_state.cc:0", f"rank {rank} of {world_size}: TensorRT-LLM worker waiting for the leader")
        while not stop.wait(0.5):
            pass
        log.info("server.cc:307", f"Signal ({received[0]}) received.")
        return 0

    try:
        if opts.allow_grpc:
            from . import grpc_server  # grpc only in the image (host tests import this module)
            servers.append(grpc_server.start(state, opts.grpc_address, opts.grpc_port))
            log.info("grpc_server.cc:2495", f"Started GRPCInferenceService at {opts.grpc_address}:{opts.grpc_port}")
        if opts.allow_http:
            try:
                http = _Server((opts.http_address, opts.http_port), _handler(state))
            except OSError as e:
                raise OSError(f"failed to start HTTP service: Unavailable - Socket '{opts.http_address}:"
                              f"{opts.http_port}' already in use ({e.strerror})")
            threading.Thread(target=http.serve_forever, daemon=True).start()
            servers.append(http)
            log.info("http_server.cc:4637", f"Started HTTPService at {opts.http_address}:{opts.http_port}")
        if opts.allow_metrics:
            servers.append(_metrics_server(opts.metrics_address, opts.metrics_port, state))
            log.info("http_server.cc:320", f"Started Metrics Service at {opts.metrics_address}:{opts.metrics_port}")
    except OSError as e:
        log.error("main.cc:0", str(e))
        print(f"error: {e}", file=sys.stderr, flush=True)
        return 1

    while not stop.wait(0.5):
        pass
    state.shutting_down = True
    log.info("server.cc:307", f"Signal ({received[0]}) received.")
    log.info("server.cc:307", "Waiting for in-flight requests to complete.")
    for s in servers:
        if isinstance(s, ThreadingHTTPServer):
            s.shutdown()
            s.server_close()
        else:  # the gRPC server
            s.stop(None)
    log.info("server.cc:338", "All models are stopped, unloading models")
    return 0
