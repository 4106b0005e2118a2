"""Loading a model repository the way Triton 2.44 with the TensorRT-LLM v0.8.0 backend would.

Every model directory's config.pbtxt is parsed as `inference.ModelConfig` text format with the
real schema (so an unfilled `${...}` in a typed field such as max_batch_size, decoupled or count is
a parse error, as in Triton). Backend checks:

- python models: a version directory and its model.py; the preprocessing/postprocessing models'
  tokenizer_dir must hold a tokenizer and tokenizer_type must be t5|auto|llama.
- tensorrtllm (v0.8.0 backend semantics, ../shared/trtllm-v0.8.0/README.md): gpt_model_type must be
  V1|inflight_batching|inflight_fused_batching; gpt_model_path must hold config.json and this
  rank's engine built by 0.8.0; the MPI world must be the engine's tp*pp; in-flight batching needs
  an engine with the GPT attention plugin, packed input and a paged KV cache; KV cache reuse
  needs use_paged_context_fmha; optional string parameters that do not parse (an unfilled
  `${...}`) fall back to their defaults with a warning.
- ensembles: every step's model must be loaded, and the ensemble's max_batch_size may not exceed
  a step model's.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Dict, List, Optional

from .. import engine as engine_fmt
from .. import textgen
from . import log

try:
    from google.protobuf import text_format
    from . import model_config_pb2 as mc
except ImportError as _e:  # pragma: no cover - host without protobuf
    text_format = None
    mc = None
    IMPORT_ERROR = _e
else:
    IMPORT_ERROR = None

GPT_MODEL_TYPES = {"V1": "V1", "v1": "V1", "inflight_batching": "inflight_batching",
                   "inflight_fused_batching": "inflight_fused_batching"}
TOKENIZER_TYPES = ("t5", "auto", "llama")


class LoadError(Exception):
    pass


@dataclass
class Model:
    name: str
    path: str
    config: object = None
    state: str = "UNAVAILABLE"
    reason: str = ""
    version: str = "1"
    info: Dict[str, object] = field(default_factory=dict)

    @property
    def ready(self) -> bool:
        return self.state == "READY"


def param(config, key: str) -> Optional[str]:
    if key in config.parameters:
        return config.parameters[key].string_value
    return None


def _parse_bool(text: str) -> bool:
    if text in ("true", "True", "TRUE", "1"):
        return True
    if text in ("false", "False", "FALSE", "0"):
        return False
    raise ValueError(text)


def _optional(config, key: str, parse, default, model: str):
    """The backend reads optional parameters with stoi/stof/a bool parser and falls back to the
    default (with a warning) when the value does not parse -- e.g. an unfilled ${...}."""
    text = param(config, key)
    if text is None:
        log.warning("model_instance_state.cc:80", f"{key} is not specified, will use default value of {default}")
        return default
    try:
        return parse(text)
    except (ValueError, TypeError):
        log.warning("model_instance_state.cc:80",
                    f"{key} is not specified, will use default value of {default} (could not parse {text!r})")
        return default


def discover(repositories: List[str]) -> Dict[str, str]:
    found: Dict[str, str] = {}
    for repo in repositories:
        if not os.path.isdir(repo):
            raise LoadError(f"failed to stat file {repo}")
        for entry in sorted(os.listdir(repo)):
            path = os.path.join(repo, entry)
            if entry.startswith(".") or not os.path.isdir(path):
                continue
            if entry in found:
                raise LoadError(f"model '{entry}' exists in multiple model repositories")
            found[entry] = path
    return found


def _version_dir(model: Model) -> str:
    versions = [d for d in os.listdir(model.path) if d.isdigit() and os.path.isdir(os.path.join(model.path, d))]
    if not versions:
        raise LoadError(f"at least one version must be available under the version policy of model '{model.name}'")
    model.version = str(max(int(v) for v in versions))
    return os.path.join(model.path, model.version)


def parse_config(model: Model):
    path = os.path.join(model.path, "config.pbtxt")
    if not os.path.isfile(path):
        raise LoadError(f"failed to load model configuration for '{model.name}': {path} does not exist "
                        "(auto-complete of the configuration is disabled)")
    with open(path, encoding="utf-8") as f:
        text = f.read()
    config = mc.ModelConfig()
    try:
        text_format.Parse(text, config)
    except text_format.ParseError as e:
        raise LoadError(f"failed to read text proto from {path} ({e})") from e
    if config.name and config.name != model.name:
        raise LoadError(f"unexpected 'name' in model configuration '{config.name}' of model '{model.name}': "
                        "the model's name must be its directory's name")
    if not config.name:
        config.name = model.name
    if not config.backend and not config.platform:
        raise LoadError(f"unexpected platform type '' for {model.name}")
    if config.HasField("dynamic_batching") and config.max_batch_size > 0:
        for size in config.dynamic_batching.preferred_batch_size:
            if size > config.max_batch_size:
                raise LoadError(f"dynamic batching preferred size must be <= max batch size for {model.name}")
    return config


def _check_python(model: Model, rank: int) -> None:
    version_dir = _version_dir(model)
    if not os.path.isfile(os.path.join(version_dir, "model.py")):
        raise LoadError(f"failed to load '{model.name}' version {model.version}: Internal: Failed to initialize "
                        f"stub: python model file {os.path.join(version_dir, 'model.py')} does not exist")
    config = model.config
    tokenizer_dir = param(config, "tokenizer_dir")
    if tokenizer_dir is not None:
        # The preprocessing/postprocessing models build their tokenizer in initialize().
        tokenizer_type = param(config, "tokenizer_type")
        if tokenizer_type not in TOKENIZER_TYPES:
            raise LoadError(f"Internal: AttributeError: Unexpected tokenizer type: {tokenizer_type}\n\nAt:\n"
                            f"  {version_dir}/model.py: initialize")
        try:
            model.info["tokenizer"] = textgen.load_tokenizer_info(tokenizer_dir)
        except textgen.TokenizerError as e:
            raise LoadError(f"Internal: OSError: {e}\n\nAt:\n  {version_dir}/model.py: initialize") from e
        model.info["tokenizer_dir"] = tokenizer_dir
    model.info["skip_special_tokens"] = (param(config, "skip_special_tokens") or "True").lower() in ("true", "1")
    model.info["add_special_tokens"] = (param(config, "add_special_tokens") or "False").lower() in ("true", "1")
    model.info["decoupled"] = config.model_transaction_policy.decoupled


def _check_tensorrtllm(model: Model, rank: int, world_size: int) -> None:
    config = model.config
    _version_dir(model)
    failure = "unexpected error when creating modelInstanceState: "
    gpt_model_type = param(config, "gpt_model_type")
    if gpt_model_type is None:
        raise LoadError(failure + "[TensorRT-LLM][ERROR] gpt_model_type parameter is required")
    if gpt_model_type not in GPT_MODEL_TYPES:
        raise LoadError(failure + f"Invalid gpt_model_type '{gpt_model_type}'. Must be v1/inflight_batching/"
                        "inflight_fused_batching.")
    batching = GPT_MODEL_TYPES[gpt_model_type]
    engine_dir = param(config, "gpt_model_path")
    if engine_dir is None:
        raise LoadError(failure + "[TensorRT-LLM][ERROR] gpt_model_path parameter is required")
    try:
        engine_config = engine_fmt.read_engine_config(engine_dir)
    except engine_fmt.EngineError as e:
        raise LoadError(failure + f"[TensorRT-LLM][ERROR] Assertion failed: {e}") from e
    engine_world, tp, pp = engine_fmt.world_of(engine_config)
    if engine_world != world_size:
        raise LoadError(failure + f"[TensorRT-LLM][ERROR] Assertion failed: Number of MPI processes ({world_size}) "
                        f"must equal the engine's world size tp_size*pp_size ({tp}*{pp}={engine_world})")
    try:
        engine_fmt.read_rank_engine(engine_dir, rank, engine_config)
    except engine_fmt.EngineError as e:
        raise LoadError(failure + f"[TensorRT-LLM][ERROR] {e}") from e
    build = engine_config["build_config"]
    plugins = build.get("plugin_config") or {}
    if batching != "V1" and not (plugins.get("gpt_attention_plugin") and plugins.get("remove_input_padding")
                                 and plugins.get("paged_kv_cache")):
        raise LoadError(failure + "TrtGptModelInflightBatching requires GPT attention plugin with packed input "
                        "and paged KV cache.")
    max_beam_width = _optional(config, "max_beam_width", int, 1, model.name)
    if max_beam_width > build.get("max_beam_width", 1):
        raise LoadError(failure + f"[TensorRT-LLM][ERROR] Assertion failed: max_beam_width ({max_beam_width}) "
                        f"exceeds the engine's max_beam_width ({build.get('max_beam_width', 1)})")
    _optional(config, "max_tokens_in_paged_kv_cache", int, None, model.name)
    _optional(config, "max_attention_window_size", int, None, model.name)
    _optional(config, "kv_cache_free_gpu_mem_fraction", float, 0.9, model.name)
    policy = _optional(config, "batch_scheduler_policy", str, "guaranteed_no_evict", model.name)
    if policy not in ("max_utilization", "guaranteed_no_evict"):
        log.warning("model_instance_state.cc:80",
                    f"batch_scheduler_policy '{policy}' is not valid, will use default value of guaranteed_no_evict")
    _optional(config, "enable_trt_overlap", _parse_bool, False, model.name)
    exclude_input = _optional(config, "exclude_input_in_output", _parse_bool, False, model.name)
    kv_reuse = _optional(config, "enable_kv_cache_reuse", _parse_bool, False, model.name)
    _optional(config, "normalize_log_probs", _parse_bool, True, model.name)
    chunked = _optional(config, "enable_chunked_context", _parse_bool, False, model.name)
    if kv_reuse and not plugins.get("use_paged_context_fmha"):
        raise LoadError(failure + "[TensorRT-LLM][ERROR] Assertion failed: When KV cache block reuse is set, "
                        "model has to be built with paged context FMHA support")
    if chunked and not plugins.get("use_paged_context_fmha"):
        # Stand-in rule (wording ours): chunked context needs paged context FMHA.
        raise LoadError(failure + "[TensorRT-LLM][ERROR] Assertion failed: chunked context needs an engine built "
                        "with --use_paged_context_fmha enable")
    if config.max_batch_size > build.get("max_batch_size", 1):
        # Unverified against the real backend (which may just never fill the extra slots): the
        # stand-in refuses, so that a Triton batch larger than the engine's is caught.
        raise LoadError(failure + f"[stand-in, unverified] triton max_batch_size ({config.max_batch_size}) exceeds "
                        f"the engine's max_batch_size ({build.get('max_batch_size')})")
    model.info.update({
        "engine_dir": engine_dir,
        "engine_config": engine_config,
        "batching": batching,
        "decoupled": config.model_transaction_policy.decoupled,
        "exclude_input_in_output": exclude_input,
        "max_beam_width": max_beam_width,
    })


def _check_ensemble(model: Model, models: Dict[str, Model]) -> None:
    config = model.config
    if not config.HasField("ensemble_scheduling") or not config.ensemble_scheduling.step:
        raise LoadError(f"ensemble {model.name} must specify ensemble_scheduling")
    _version_dir(model)
    for step in config.ensemble_scheduling.step:
        dep = models.get(step.model_name)
        if dep is None or not dep.ready:
            detail = f" Model '{step.model_name}' loading failed with error: {dep.reason}" if dep is not None and dep.reason else ""
            raise LoadError(f"ensemble '{model.name}' depends on '{step.model_name}' which has no loaded version."
                            + detail)
        if config.max_batch_size > dep.config.max_batch_size:
            raise LoadError(f"ensemble '{model.name}' allows maximum batch size {config.max_batch_size}, but it "
                            f"contains model '{dep.name}' which only allows maximum batch size to be "
                            f"{dep.config.max_batch_size}")
        inputs = {i.name for i in dep.config.input}
        outputs = {o.name for o in dep.config.output}
        for key in step.input_map:
            if key not in inputs:
                raise LoadError(f"in ensemble {model.name}, ensemble tensor {step.input_map[key]} is mapped to "
                                f"non-existing input {key} in model {dep.name}")
        for key in step.output_map:
            if key not in outputs:
                raise LoadError(f"in ensemble {model.name}, ensemble tensor {step.output_map[key]} is mapped from "
                                f"non-existing output {key} in model {dep.name}")
    model.info["steps"] = [s.model_name for s in config.ensemble_scheduling.step]


def load(repositories: List[str], mode: str, requested: List[str], rank: int, world_size: int) -> Dict[str, Model]:
    if mc is None:
        raise LoadError(f"the stand-in tritonserver needs model_config_pb2 generated by protoc at image build "
                        f"({IMPORT_ERROR})")
    found = discover(repositories)
    models: Dict[str, Model] = {}
    configs_failed: Dict[str, str] = {}

    if mode == "explicit":
        names = []
        for name in requested:
            if name not in found:
                raise LoadError(f"failed to load '{name}', failed to poll from model repository")
            names.append(name)
    else:
        names = list(found)

    # Ensembles pull in the models they are made of.
    pending = list(dict.fromkeys(names))
    seen = set()
    while pending:
        name = pending.pop(0)
        if name in seen:
            continue
        seen.add(name)
        model = Model(name=name, path=found[name])
        models[name] = model
        try:
            model.config = parse_config(model)
        except LoadError as e:
            model.reason = str(e)
            configs_failed[name] = str(e)
            log.error("model_repository_manager.cc:1335", f"Poll failed for model directory '{name}': {e}")
            continue
        if model.config.platform == "ensemble":
            for step in model.config.ensemble_scheduling.step:
                if step.model_name in found and step.model_name not in seen:
                    pending.append(step.model_name)

    order = [m for m in models.values() if m.config is not None and m.config.platform != "ensemble"]
    order += [m for m in models.values() if m.config is not None and m.config.platform == "ensemble"]
    for model in order:
        config = model.config
        log.info("model_lifecycle.cc:469", f"loading: {model.name}:1")
        try:
            if config.platform == "ensemble":
                _check_ensemble(model, models)
            elif config.backend == "python":
                _check_python(model, rank)
            elif config.backend == "tensorrtllm":
                _check_tensorrtllm(model, rank, world_size)
            else:
                raise LoadError(f"unable to find backend library for backend '{config.backend}', try specifying "
                                "runtime on the model configuration.")
        except LoadError as e:
            model.reason = str(e)
            log.error("model_lifecycle.cc:638", f"failed to load '{model.name}' version {model.version}: {e}")
            continue
        model.state = "READY"
        log.info("model_lifecycle.cc:815", f"successfully loaded '{model.name}'")
    return models
