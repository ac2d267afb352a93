"""Test doubles of NVIDIA's TensorRT-LLM Triton models, in the e2e model repository.

Configs come from the same templates ``build_engines trtllm`` fills for a GPU node:

* the engine path as built (``preprocessing``, ``tensorrt_llm``, ``postprocessing``, ``ensemble``)
  with Python doubles as the models, so real Triton loads and validates our ensemble wiring;
* ``tensorrt_llm_bls`` (current interface), ``tensorrt_llm_bls_legacy`` (the older interface:
  ``random_seed``, ``min_length``, no token counts) and the LLM API model, each one Python double
  (``trtllm_mimic``) at that model's exact tensor interface.

Every double tokenizes and decodes with a real byte-fallback tokenizer (``byte_fallback_tokenizer``:
SentencePiece-style, as Llama 2, Mistral and Gemma ship): one token per ASCII character, and
characters outside the vocabulary as one ``<0xNN>`` token per UTF-8 byte. Decoding ids that end
inside a character gives U+FFFD, exactly as NVIDIA's postprocessing does, so cumulative text is
not always an extension of the previous text ("Caf\ufffd" then "Café").
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import TYPE_CHECKING

from google.protobuf import text_format
from tritonclient.grpc import model_config_pb2 as mc

from build_engines.trtllm import repository
from build_engines.trtllm.config import TrtllmModel
from gateway.registry import ModelEntry, upsert_entry

if TYPE_CHECKING:
    from tokenizers import Tokenizer

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


# The doubles' limits, as an engine built with these values would enforce them (registered too).
MAX_INPUT_LEN = 2048  # trtllm-build --max_input_len: longer prompts are rejected
MAX_SEQ_LEN = 4096  # trtllm-build --max_seq_len / LLM API max_seq_len: prompt + completion
SPECIALS = ("<pad>", "<eos>", "<bos>", "<unk>")  # ids 0..3: pad, end, begin, unknown


def _byte_fallback() -> Tokenizer:
    """The byte-fallback tokenizer (see ``byte_fallback_tokenizer``)."""
    from tokenizers import Tokenizer, decoders, models, normalizers  # noqa: PLC0415

    vocab = {name: i for i, name in enumerate(SPECIALS)}
    for byte in range(256):
        vocab[f"<0x{byte:02X}>"] = len(vocab)
    for char in ["\u2581", *(chr(c) for c in range(0x21, 0x7F))]:
        vocab[char] = len(vocab)
    tok = Tokenizer(models.BPE(vocab=vocab, merges=[], unk_token="<unk>", byte_fallback=True, fuse_unk=True))
    tok.normalizer = normalizers.Replace(" ", "\u2581")
    tok.decoder = decoders.Sequence([decoders.Replace("\u2581", " "), decoders.ByteFallback(), decoders.Fuse()])
    tok.add_special_tokens(list(SPECIALS))
    return tok


def byte_fallback_tokens(text: str) -> list[str]:
    """The tokens the doubles see for ``text`` (one per ASCII character, one per byte otherwise)."""
    return _byte_fallback().encode(text, add_special_tokens=False).tokens


def byte_fallback_ids(text: str) -> list[int]:
    """The token ids the doubles see for ``text``."""
    return _byte_fallback().encode(text, add_special_tokens=False).ids


def mimic_logprob(token_id: int) -> float:
    """The log-probability the doubles give a token (``output_log_probs``)."""
    return -0.125 * (1 + token_id % 8)


def byte_fallback_tokenizer(folder: Path) -> Path:
    """Write a byte-fallback ``tokenizer.json`` (and its ``tokenizer_config.json``) into ``folder``.

    Vocabulary: the special tokens, the 256 byte tokens ``<0x00>``..``<0xFF>``, "▁" (a space) and
    the printable ASCII characters; no merges. The decoder is Gemma's (Replace "▁", ByteFallback,
    Fuse), so each token's text keeps its space when decoded alone.
    """
    folder.mkdir(parents=True, exist_ok=True)
    _byte_fallback().save(str(folder / "tokenizer.json"))
    (folder / "tokenizer_config.json").write_text(json.dumps(
        {"bos_token": "<bos>", "eos_token": "<eos>", "pad_token": "<pad>", "unk_token": "<unk>"}))
    return folder / "tokenizer.json"


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


def _double(config: mc.ModelConfig, name: str, contract: str, instances: int,
            tokenizer: Path) -> mc.ModelConfig:
    config.name = name
    config.parameters["contract"].string_value = contract
    config.parameters["tokenizer_path"].string_value = str(tokenizer)
    config.parameters["max_input_len"].string_value = str(MAX_INPUT_LEN)
    config.parameters["max_seq_len"].string_value = str(MAX_SEQ_LEN)
    del config.instance_group[:]
    config.instance_group.add(count=instances, kind=mc.ModelInstanceGroup.KIND_CPU)
    return config


def _legacy(bls: mc.ModelConfig, tokenizer: Path) -> mc.ModelConfig:
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
    return _double(legacy, "tensorrt_llm_bls_legacy", "bls_legacy", 2, tokenizer)


def _entry(out: Path, model_id: str, triton_model: str, **kw: object) -> ModelEntry:
    entry = ModelEntry(id=model_id, triton_model=triton_model,
                       chat_template="models/test/plain_template.jinja", default_max_tokens=64,
                       max_tokens_limit=512, context_length=MAX_SEQ_LEN, **kw)  # type: ignore[arg-type]
    upsert_entry(out / "registry.toml", entry)
    return entry


def build_trtllm_mimics(out: Path) -> list[ModelEntry]:
    """Write the doubles into ``out/model_repository`` and register them in ``out/registry.toml``."""
    repo, side = out / "model_repository", out / "models" / "test"
    side.mkdir(parents=True, exist_ok=True)
    tokenizer = byte_fallback_tokenizer(side / "byte_fallback")
    shutil.copy(HERE / "plain_template.jinja", side / "plain_template.jinja")
    m = TrtllmModel(id="trtllm-mimic", hf_model=str(tokenizer.parent), frontend="ensemble", max_batch_size=8,
                    bls_instances=2, max_input_len=MAX_INPUT_LEN, max_seq_len=MAX_SEQ_LEN)
    values = {**repository.engine_values(m, str(out / "engines")), "triton_backend": "python"}
    for name in ("preprocessing", "tensorrt_llm", "postprocessing", "ensemble"):
        code = HERE / "trtllm_ensemble" / name / "1" if name != "ensemble" else None
        config = repository.parse(repository.fill(TEMPLATES / "trtllm" / name / "config.pbtxt.tmpl", values))
        if name == "tensorrt_llm":  # the engine's build-time limits, which the C++ executor enforces
            config.parameters["mimic_max_input_len"].string_value = str(MAX_INPUT_LEN)
            config.parameters["mimic_max_seq_len"].string_value = str(MAX_SEQ_LEN)
        _write(repo, name, config, code)
    mimic = HERE / "trtllm_mimic" / "1"
    bls = repository.parse(repository.fill(TEMPLATES / "trtllm" / "tensorrt_llm_bls" / "config.pbtxt.tmpl",
                                           values))
    legacy = _legacy(bls, tokenizer)
    _write(repo, "tensorrt_llm_bls", _double(bls, "tensorrt_llm_bls", "bls", 2, tokenizer), mimic)
    _write(repo, "tensorrt_llm_bls_legacy", legacy, mimic)
    api = TrtllmModel(id="trtllm-llmapi-mimic", hf_model=str(tokenizer.parent), path="llmapi",
                      max_input_len=MAX_INPUT_LEN, max_seq_len=MAX_SEQ_LEN, max_num_tokens=MAX_SEQ_LEN)
    llmapi = repository.parse(repository.llmapi_files(api)["config.pbtxt"])
    _write(repo, "trtllm_llmapi_mimic", _double(llmapi, "trtllm_llmapi_mimic", "llmapi", 2, tokenizer), mimic)
    registered = "models/test/byte_fallback/tokenizer.json"
    engine = {"tokenizer": registered, "max_input_tokens": MAX_INPUT_LEN}
    return [
        _entry(out, "trtllm-bls-mimic", "tensorrt_llm_bls", text_mode="cumulative", **engine),
        _entry(out, "trtllm-bls-legacy-mimic", "tensorrt_llm_bls_legacy", text_mode="cumulative", **engine),
        _entry(out, "trtllm-llmapi-mimic", "trtllm_llmapi_mimic", contract="llmapi",
               text_mode="cumulative", tokenizer=registered, max_input_tokens=MAX_SEQ_LEN),
        _entry(out, "trtllm-ensemble-mimic", "ensemble", text_mode="delta", **engine),
    ]
