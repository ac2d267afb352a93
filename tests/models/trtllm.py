"""Test doubles of NVIDIA's TensorRT-LLM Triton models, in the e2e model repository.

Configs come from the same templates ``build_engines trtllm`` fills for a GPU node:

* the engine path as built (``preprocessing``, ``tensorrt_llm``, ``postprocessing``, ``ensemble``)
  with Python doubles as the models, so real Triton loads and validates our ensemble wiring;
* ``tensorrt_llm_bls`` (current interface), ``tensorrt_llm_bls_legacy`` (the older interface:
  ``random_seed``, ``min_length``, no token counts) and the LLM API model, each one Python double
  (``trtllm_mimic``) at that model's exact tensor interface.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from google.protobuf import text_format
from tritonclient.grpc import model_config_pb2 as mc

from build_engines.trtllm import repository
from build_engines.trtllm.config import TrtllmModel
from gateway.registry import ModelEntry, upsert_entry

HERE = Path(__file__).resolve().parent
TEMPLATES = repository.TEMPLATES

# tensorrtllm_backend's older tensorrt_llm_bls (before seed/min_tokens and token counts).
LEGACY_RENAMES = {"seed": "random_seed", "min_tokens": "min_length"}
LEGACY_INPUTS = {
    "text_input", "decoder_text_input", "max_tokens", "bad_words", "stop_words", "end_id", "pad_id",
    "top_k", "top_p", "temperature", "length_penalty", "repetition_penalty", "min_length",
    "presence_penalty", "frequency_penalty", "random_seed", "return_log_probs",
    "return_context_logits", "return_generation_logits", "beam_width", "stream",
    "prompt_embedding_table", "prompt_vocab_size", "embedding_bias_words", "embedding_bias_weights",
    "num_draft_tokens", "use_draft_logits"}
LEGACY_OUTPUTS = {"text_output", "cum_log_probs", "output_log_probs", "context_logits",
                  "generation_logits", "batch_index"}


def _word_tokenizer(path: Path) -> None:
    """A whitespace tokenizer.json: one token per word, so counts are easy to predict."""
    from tokenizers import Tokenizer, models, pre_tokenizers  # noqa: PLC0415

    tok = Tokenizer(models.WordLevel(vocab={"[UNK]": 0}, unk_token="[UNK]"))
    tok.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    tok.save(str(path))


def _write(repo: Path, name: str, config: str | mc.ModelConfig, code: Path | None) -> None:
    target = repo / name
    if target.exists():
        shutil.rmtree(target)
    if code is not None:
        shutil.copytree(code, target / "1", ignore=shutil.ignore_patterns("__pycache__"))
    else:
        (target / "1").mkdir(parents=True)
    text = config if isinstance(config, str) else text_format.MessageToString(config)
    (target / "config.pbtxt").write_text(text)


def _double(config: mc.ModelConfig, name: str, contract: str, instances: int) -> mc.ModelConfig:
    config.name = name
    config.parameters["contract"].string_value = contract
    del config.instance_group[:]
    config.instance_group.add(count=instances, kind=mc.ModelInstanceGroup.KIND_CPU)
    return config


def _legacy(bls: mc.ModelConfig) -> mc.ModelConfig:
    legacy = mc.ModelConfig()
    legacy.CopyFrom(bls)
    for tensor in legacy.input:
        tensor.name = LEGACY_RENAMES.get(tensor.name, tensor.name)
    kept_in = [t for t in legacy.input if t.name in LEGACY_INPUTS]
    kept_out = [t for t in legacy.output if t.name in LEGACY_OUTPUTS]
    del legacy.input[:]
    del legacy.output[:]
    legacy.input.extend(kept_in)
    legacy.output.extend(kept_out)
    return _double(legacy, "tensorrt_llm_bls_legacy", "bls_legacy", 2)


def _entry(out: Path, model_id: str, triton_model: str, **kw: object) -> ModelEntry:
    entry = ModelEntry(id=model_id, triton_model=triton_model,
                       chat_template="models/test/plain_template.jinja", default_max_tokens=64,
                       max_tokens_limit=512, context_length=1024, **kw)  # type: ignore[arg-type]
    upsert_entry(out / "registry.toml", entry)
    return entry


def build_trtllm_mimics(out: Path) -> list[ModelEntry]:
    """Write the doubles into ``out/model_repository`` and register them in ``out/registry.toml``."""
    repo, side = out / "model_repository", out / "models" / "test"
    side.mkdir(parents=True, exist_ok=True)
    _word_tokenizer(side / "words.json")
    shutil.copy(HERE / "plain_template.jinja", side / "plain_template.jinja")
    m = TrtllmModel(id="trtllm-mimic", hf_model=str(side), frontend="ensemble", max_batch_size=8,
                    bls_instances=2)
    values = {**repository.engine_values(m, str(out / "engines")), "triton_backend": "python"}
    for name in ("preprocessing", "tensorrt_llm", "postprocessing", "ensemble"):
        code = HERE / "trtllm_ensemble" / name / "1" if name != "ensemble" else None
        _write(repo, name, repository.fill(TEMPLATES / "trtllm" / name / "config.pbtxt.tmpl", values), code)
    mimic = HERE / "trtllm_mimic" / "1"
    bls = repository.parse(repository.fill(TEMPLATES / "trtllm" / "tensorrt_llm_bls" / "config.pbtxt.tmpl",
                                           values))
    _write(repo, "tensorrt_llm_bls", _double(bls, "tensorrt_llm_bls", "bls", 2), mimic)
    _write(repo, "tensorrt_llm_bls_legacy", _legacy(bls), mimic)
    api = TrtllmModel(id="trtllm-llmapi-mimic", hf_model=str(side), path="llmapi")
    llmapi = repository.parse(repository.llmapi_files(api)["config.pbtxt"])
    _write(repo, "trtllm_llmapi_mimic", _double(llmapi, "trtllm_llmapi_mimic", "llmapi", 2), mimic)
    words = "models/test/words.json"
    return [
        _entry(out, "trtllm-bls-mimic", "tensorrt_llm_bls", text_mode="cumulative", tokenizer=words),
        _entry(out, "trtllm-bls-legacy-mimic", "tensorrt_llm_bls_legacy", text_mode="cumulative",
               tokenizer=words),
        _entry(out, "trtllm-llmapi-mimic", "trtllm_llmapi_mimic", contract="llmapi",
               text_mode="cumulative", tokenizer=words),
        _entry(out, "trtllm-ensemble-mimic", "ensemble", text_mode="delta"),
    ]
