"""The xgrammar tokenizer-info file for TensorRT-LLM's guided decoding, written at build time."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from tokenizers import Tokenizer

from build_engines.trtllm import repository
from build_engines.trtllm.cli import TokenizerInfo, describe, execute, plan
from build_engines.trtllm.config import BuildFile, TrtllmModel
from build_engines.trtllm.tokenizer_info import tokenizer_info
from tests.models.trtllm import byte_fallback_tokenizer


def test_the_file_has_nvidias_three_keys_from_the_hf_tokenizer(tmp_path: Path) -> None:
    byte_fallback_tokenizer(tmp_path)
    info = tokenizer_info(str(tmp_path))
    assert set(info) == {"encoded_vocab", "tokenizer_str", "stop_token_ids"}
    tok = Tokenizer.from_file(str(tmp_path / "tokenizer.json"))
    assert len(info["encoded_vocab"]) == tok.get_vocab_size(with_added_tokens=True)
    assert [tok.token_to_id(t) for t in info["encoded_vocab"]] == list(range(len(info["encoded_vocab"])))
    assert info["encoded_vocab"][:4] == ["<pad>", "<eos>", "<bos>", "<unk>"]
    assert info["encoded_vocab"][4 + 0xC3] == "<0xC3>"  # byte-fallback tokens keep their names
    assert info["stop_token_ids"] == [1]
    rebuilt = Tokenizer.from_str(info["tokenizer_str"])
    assert rebuilt.encode("Café").ids == tok.encode("Café").ids


def test_generation_configs_eos_ids_win(tmp_path: Path) -> None:
    byte_fallback_tokenizer(tmp_path)
    (tmp_path / "generation_config.json").write_text(json.dumps({"eos_token_id": [1, 3]}))
    assert tokenizer_info(str(tmp_path))["stop_token_ids"] == [1, 3]


def test_a_model_without_a_fast_tokenizer_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="tokenizer.json"):
        tokenizer_info(str(tmp_path))


def test_the_build_writes_the_file_where_the_tensorrt_llm_config_points(tmp_path: Path) -> None:
    hf = tmp_path / "hf"
    byte_fallback_tokenizer(hf)
    m = TrtllmModel(id="m", hf_model=str(hf))
    build = BuildFile(workdir=str(tmp_path / "w"), models=[m])
    steps = [s for s in plan(build, tmp_path / "out") if isinstance(s, TokenizerInfo)]
    config = repository.parse(repository.engine_configs(m, build.workdir)["tensorrt_llm"])
    assert len(steps) == 1
    assert str(steps[0].target) == config.parameters["xgrammar_tokenizer_info_path"].string_value
    assert config.parameters["guided_decoding_backend"].string_value == "xgrammar"
    assert config.parameters["tokenizer_dir"].string_value == str(hf)  # the Python backend's
    assert "xgrammar tokenizer info" in describe(steps[0])
    execute(steps[0])
    assert json.loads(steps[0].target.read_text())["stop_token_ids"] == [1]
