"""Write the test models into a model repository and register them."""

from __future__ import annotations

import shutil
from pathlib import Path
from string import Template

from gateway.registry import ModelEntry, upsert_entry

HERE = Path(__file__).resolve().parent

# public id -> (triton name, mode, instances)
TEST_MODELS = {
    "echo": ("echo", "echo", 2),
    "slow-echo": ("slow_echo", "slow", 2),
    "failing": ("failing", "fail", 1),
    "hanging": ("hanging", "hang", 1),
}


def build_test_models(out: Path) -> list[ModelEntry]:
    """Add the echo-family test models to ``out/model_repository`` and ``out/registry.toml``."""
    entries = []
    template = Template((HERE / "echo" / "config.pbtxt.tmpl").read_text())
    side = out / "models" / "test"
    side.mkdir(parents=True, exist_ok=True)
    shutil.copy(HERE / "plain_template.jinja", side / "plain_template.jinja")
    for model_id, (name, mode, instances) in TEST_MODELS.items():
        target = out / "model_repository" / name
        if target.exists():
            shutil.rmtree(target)
        shutil.copytree(HERE / "echo" / "1", target / "1",
                        ignore=shutil.ignore_patterns("__pycache__"))
        (target / "config.pbtxt").write_text(
            template.substitute(name=name, mode=mode, instances=instances))
        entry = ModelEntry(id=model_id, triton_model=name, chat_template="models/test/plain_template.jinja",
                           default_max_tokens=64, max_tokens_limit=512, context_length=1024)
        upsert_entry(out / "registry.toml", entry)
        entries.append(entry)
    return entries


def _word_tokenizer(path: Path) -> None:
    """A whitespace tokenizer.json: one token per word, so counts are easy to predict."""
    from tokenizers import Tokenizer, models, pre_tokenizers

    tok = Tokenizer(models.WordLevel(vocab={"[UNK]": 0}, unk_token="[UNK]"))
    tok.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    tok.save(str(path))


def build_trtllm_mimics(out: Path) -> list[ModelEntry]:
    """Test doubles of NVIDIA's tensorrt_llm_bls and LLM API models, configs from the same specs
    that build_engines writes for the real ones."""
    from build_engines.trtllm import repository, specs

    side = out / "models" / "test"
    side.mkdir(parents=True, exist_ok=True)
    _word_tokenizer(side / "words.json")
    shutil.copy(HERE / "plain_template.jinja", side / "plain_template.jinja")
    configs = {
        "trtllm_bls_mimic": repository.model_config(
            "trtllm_bls_mimic", backend="python", max_batch_size=8, decoupled=True,
            inputs=specs.TEXT_INPUTS + specs.BLS_EXTRA_INPUTS, outputs=specs.TEXT_OUTPUTS,
            instances=2, parameters={"contract": "bls", "accumulate_tokens": True}),
        "trtllm_llmapi_mimic": repository.model_config(
            "trtllm_llmapi_mimic", backend="python", max_batch_size=0, decoupled=True,
            inputs=specs.LLMAPI_INPUTS, outputs=specs.LLMAPI_OUTPUTS, instances=2,
            parameters={"contract": "llmapi"}),
    }
    entries = []
    for name, config in configs.items():
        target = out / "model_repository" / name
        if target.exists():
            shutil.rmtree(target)
        shutil.copytree(HERE / "trtllm_mimic" / "1", target / "1",
                        ignore=shutil.ignore_patterns("__pycache__"))
        (target / "config.pbtxt").write_text(repository.dump(config))
        contract = "llmapi" if "llmapi" in name else "bls"
        entry = ModelEntry(id=name.replace("_", "-"), triton_model=name, contract=contract,
                           text_mode="cumulative", chat_template="models/test/plain_template.jinja",
                           tokenizer="models/test/words.json", default_max_tokens=64,
                           max_tokens_limit=512, context_length=1024)
        upsert_entry(out / "registry.toml", entry)
        entries.append(entry)
    return entries
