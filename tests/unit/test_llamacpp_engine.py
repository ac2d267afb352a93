"""Pure parts of the CPU chat engine: prefix-cache planning, step scheduling, CPU budget."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import pytest

_DIR = Path(__file__).resolve().parents[2] / "model_repository/llamacpp_chat/1"


def _load(name: str):  # type: ignore[no-untyped-def]
    spec = importlib.util.spec_from_file_location(f"llamacpp_{name}", _DIR / f"{name}.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


slots = _load("slots")
schedule = _load("schedule")
machine = _load("machine")

SYSTEM = list(range(100, 140))  # a 40-token system prompt


def _run(table, prompt, reserve, produced=()):  # type: ignore[no-untyped-def]
    """Plan, start, 'decode' the prompt (and some output) and return the plan."""
    plan = table.plan(prompt, reserve)
    assert plan is not None
    table.start(plan, prompt, reserve)
    table.extend(plan.seq, prompt[plan.reuse:] + list(produced))
    return plan


def test_common_prefix_counts_matching_tokens() -> None:
    assert slots.common_prefix([1, 2, 3], [1, 2, 4]) == 2
    assert slots.common_prefix(list(range(200)), list(range(200))) == 200
    long_a = list(range(150)) + [7]
    long_b = list(range(150)) + [8, 9]
    assert slots.common_prefix(long_a, long_b) == 150
    assert slots.common_prefix([], [1]) == 0


def test_cold_request_gets_an_empty_sequence_and_reuses_nothing() -> None:
    table = slots.SlotTable(n_seq=4, capacity=1000)
    plan = table.plan(SYSTEM + [1, 2, 3], reserve=100)
    assert (plan.seq, plan.reuse, plan.copy_from, plan.trim_from) == (0, 0, None, None)


def test_next_turn_takes_over_the_conversation_without_copy() -> None:
    table = slots.SlotTable(n_seq=4, capacity=1000)
    turn1 = SYSTEM + [1, 2, 3]
    first = _run(table, turn1, 100, produced=[50, 51, 52])
    table.finish(first.seq)
    turn2 = turn1 + [50, 51, 52] + [9, 9, 9]
    plan = table.plan(turn2, reserve=100)
    assert plan.seq == first.seq
    assert plan.reuse == len(turn1) + 3  # prompt and the earlier answer
    assert plan.copy_from is None and plan.trim_from is None and plan.clear == []


def test_shared_system_prompt_is_copied_and_the_source_kept() -> None:
    table = slots.SlotTable(n_seq=4, capacity=1000)
    a = _run(table, SYSTEM + [1, 2, 3], 100, produced=[50])
    table.finish(a.seq)
    plan = table.plan(SYSTEM + [4, 5, 6], reserve=100)
    assert plan.copy_from == a.seq and plan.seq != a.seq
    assert plan.reuse == len(SYSTEM)
    table.start(plan, SYSTEM + [4, 5, 6], 100)
    assert table.tokens[a.seq] == SYSTEM + [1, 2, 3, 50]  # the source's own turn survives
    assert table.tokens[plan.seq] == SYSTEM
    assert table.hits == 1 and table.reused_tokens == len(SYSTEM)


def test_prefix_of_a_running_request_is_shared() -> None:
    table = slots.SlotTable(n_seq=4, capacity=1000)
    running = _run(table, SYSTEM + [1], 100)
    plan = table.plan(SYSTEM + [2], reserve=100)
    assert plan.copy_from == running.seq and plan.reuse == len(SYSTEM)


def test_identical_prompt_keeps_its_last_token_to_evaluate() -> None:
    table = slots.SlotTable(n_seq=2, capacity=1000)
    prompt = SYSTEM + [1, 2]
    first = _run(table, prompt, 100, produced=[7])
    table.finish(first.seq)
    plan = table.plan(prompt, reserve=100)
    assert plan.reuse == len(prompt) - 1


def test_only_idle_sequence_is_trimmed_when_it_is_the_source() -> None:
    table = slots.SlotTable(n_seq=2, capacity=1000)
    busy = _run(table, [9] * 10, 50)
    idle = _run(table, SYSTEM + [1, 2, 3], 100)
    table.finish(idle.seq)
    plan = table.plan(SYSTEM + [4], reserve=60)
    assert busy.seq != idle.seq
    assert (plan.seq, plan.reuse, plan.trim_from, plan.copy_from) == (idle.seq, len(SYSTEM), len(SYSTEM), None)


def test_reuse_can_be_refused() -> None:
    table = slots.SlotTable(n_seq=4, capacity=1000)
    a = _run(table, SYSTEM + [1, 2, 3], 100)
    table.finish(a.seq)
    plan = table.plan(SYSTEM + [1, 2, 3], reserve=100, reuse=False)
    assert plan.reuse == 0 and plan.copy_from is None and plan.seq != a.seq


def test_no_idle_sequence_means_wait() -> None:
    table = slots.SlotTable(n_seq=2, capacity=1000)
    _run(table, [1, 2], 10)
    _run(table, [3, 4], 10)
    assert table.plan([5, 6], 10) is None


def test_least_recently_used_idle_sequences_are_evicted_to_fit() -> None:
    table = slots.SlotTable(n_seq=4, capacity=300)
    old = _run(table, [1] * 100, 100)
    table.finish(old.seq)
    new = _run(table, [2] * 100, 100)
    table.finish(new.seq)
    assert table.used() == 200
    plan = table.plan([3] * 150, reserve=200)  # needs 200 of 300: one cached sequence must go
    assert old.seq in plan.clear and new.seq not in plan.clear
    table.start(plan, [3] * 150, 200)
    assert table.used() == 300 and table.tokens[old.seq] == []


def test_running_reservations_are_never_evicted() -> None:
    table = slots.SlotTable(n_seq=4, capacity=300)
    _run(table, [1] * 10, 250)
    assert table.plan([2] * 10, reserve=100) is None  # waits for the running request
    with pytest.raises(ValueError):
        table.plan([2] * 10, reserve=301)


def test_schedule_gives_a_lone_prompt_the_whole_batch() -> None:
    assert schedule.plan_step(0, [700], n_batch=512, prefill_chunk=64) == [512]
    assert schedule.plan_step(0, [100, 300, 200], n_batch=512, prefill_chunk=64) == [100, 300, 112]


def test_schedule_chunks_prompts_while_others_decode() -> None:
    assert schedule.plan_step(3, [700, 50], n_batch=512, prefill_chunk=64) == [64, 0]
    assert schedule.plan_step(3, [40, 50], n_batch=512, prefill_chunk=64) == [40, 24]
    assert schedule.plan_step(2, [], n_batch=512, prefill_chunk=64) == []
    assert schedule.plan_step(4, [10], n_batch=4, prefill_chunk=64) == [0]


def test_cgroup_v2_quota_limits_the_threads(tmp_path: Path) -> None:
    root = tmp_path / "cg"
    (root / "kubepods" / "pod1").mkdir(parents=True)
    (root / "kubepods" / "pod1" / "cpu.max").write_text("150000 100000\n")
    proc = tmp_path / "cgroup"
    proc.write_text("0::/kubepods/pod1\n")
    assert machine.cgroup_cpu_limit(root, proc) == 1.5
    assert machine.cpu_budget(root, proc, affinity=64) == 2
    (root / "kubepods" / "pod1" / "cpu.max").write_text("max 100000\n")
    assert machine.cpu_budget(root, proc, affinity=8) == 8


def test_cgroup_v1_quota_and_no_cgroup(tmp_path: Path) -> None:
    (tmp_path / "cpu").mkdir()
    (tmp_path / "cpu" / "cpu.cfs_quota_us").write_text("300000\n")
    (tmp_path / "cpu" / "cpu.cfs_period_us").write_text("100000\n")
    missing = tmp_path / "none"
    assert machine.cpu_budget(tmp_path, missing, affinity=16) == 3
    (tmp_path / "cpu" / "cpu.cfs_quota_us").write_text("-1\n")
    assert machine.cpu_budget(tmp_path, missing, affinity=16) == 16
    assert machine.cpu_budget(tmp_path / "empty", missing, affinity=4) == 4


def test_thread_setting_auto_or_capped() -> None:
    assert machine.threads("auto", budget=2) == 2
    assert machine.threads("0", budget=3) == 3
    assert machine.threads(8, budget=2) == 2
    assert machine.threads("1", budget=2) == 1


def _feed(tuner, seconds_per_token: dict[int, float], steps: int) -> list[int]:  # type: ignore[no-untyped-def]
    used = []
    threads = tuner.active
    for _ in range(steps):
        used.append(threads)
        threads = tuner.record(seconds_per_token[threads] * 4, 4)
    return used


def test_thread_tuner_drops_to_one_thread_when_two_are_slower() -> None:
    tuner = machine.ThreadTuner(2, window=4, explore_every=2, window_s=1e9)
    used = _feed(tuner, {2: 0.9, 1: 0.115}, steps=40)
    assert used[:8] == [2] * 8  # two windows at 2 threads, then one exploring 1 thread
    assert used[8:12] == [1] * 4
    assert tuner.current == 1 and used[-1] == 1 and tuner.switches == 1


def test_thread_tuner_keeps_all_threads_when_they_are_faster() -> None:
    tuner = machine.ThreadTuner(2, window=4, explore_every=2, window_s=1e9)
    used = _feed(tuner, {2: 0.006, 1: 0.010}, steps=40)
    assert tuner.current == 2 and tuner.switches == 0
    assert used.count(1) == 12  # exploring one window in every three, never switching
    assert machine.ThreadTuner(1).record(1.0, 4) == 1  # one CPU: nothing to tune


def test_thread_tuner_windows_end_after_a_time_limit() -> None:
    tuner = machine.ThreadTuner(2, window=32, explore_every=1, window_s=0.5)
    assert tuner.record(0.4, 4) == 2  # one step is never a window
    assert tuner.record(0.4, 4) == 1  # 0.8 s: the window ends and the next one explores 1 thread


# ---- constrained decoding and log-probabilities on the real engine (SmolLM2 GGUF, CPU) ----------

@pytest.fixture(scope="module")
def engine():  # type: ignore[no-untyped-def]
    """The batching loop on the real SmolLM2 GGUF, and the model's modules as Triton loads them."""
    import types

    import llama_cpp as L

    from build_engines.cpu import fetch_smollm2

    sys.path.insert(0, str(_DIR))
    sys.modules.setdefault("triton_python_backend_utils", types.ModuleType("triton_python_backend_utils"))
    batcher, guides = _load("batcher"), _load("guides")
    llm = L.Llama(model_path=str(fetch_smollm2()), n_ctx=64, n_threads=1, verbose=False)
    loop = batcher.Batcher(llm._model.model, llm._model.vocab, parallel=2, ctx_per_seq=512, kv_cells=1024,
                           n_seq=4, threads=1)
    loop.start()
    yield types.SimpleNamespace(batcher=batcher, guides=guides, llm=llm, loop=loop)
    loop.stop()
    sys.path.remove(str(_DIR))


def _generate(engine, prompt: str, **kw):  # type: ignore[no-untyped-def]
    """Run one sequence; (text, [(token, logprob, top)], finish)."""
    import threading

    done = threading.Event()
    out: list = []
    errors: list = []

    def on_token(seq, token):  # type: ignore[no-untyped-def]
        out.append((token, seq.logprob, list(seq.top)))
        return True

    def on_done(seq, error):  # type: ignore[no-untyped-def]
        errors.append(error)
        done.set()

    tokens = engine.llm.tokenize(prompt.encode(), add_bos=False, special=True)
    seq = engine.batcher.Sequence(prompt=tokens, max_tokens=kw.pop("max_tokens", 48),
                                  temperature=kw.pop("temperature", 0.0), top_k=0, top_p=1.0,
                                  seed=kw.pop("seed", 0), on_token=on_token, on_done=on_done,
                                  reuse_prefix=False, **kw)
    engine.loop.submit(seq)
    assert done.wait(120)
    assert errors == [None]
    text = engine.llm.detokenize([t for t, _l, _top in out]).decode("utf-8", "replace")
    return text, out, seq.finish


CHAT = "<|im_start|>user\n{}<|im_end|>\n<|im_start|>assistant\n"
PERSON = {"type": "object", "properties": {"name": {"type": "string", "maxLength": 12},
                                           "age": {"type": "integer"}},
          "required": ["name", "age"], "additionalProperties": False}


@pytest.mark.parametrize("seed", [1, 2, 3, 4])
def test_a_json_schema_guide_always_gives_valid_json(engine, seed: int) -> None:  # type: ignore[no-untyped-def]
    import jsonschema

    grammar = engine.guides.to_gbnf("json_schema", json.dumps(PERSON))
    text, _out, finish = _generate(engine, CHAT.format("Tell me about a cat."), grammar=grammar,
                                   temperature=1.0, seed=seed, max_tokens=64)
    assert finish == "stop"  # the grammar completed and ended the generation
    jsonschema.validate(json.loads(text), PERSON)


def test_json_schema_strings_cannot_hold_control_characters(engine) -> None:  # type: ignore[no-untyped-def]
    grammar = engine.guides.to_gbnf("json_schema", json.dumps(PERSON))
    char = next(line for line in grammar.splitlines() if line.startswith("char ::="))
    assert char.startswith('char ::= [^"\\\\\\x7F\\x00-\\x1F] |')
    engine.guides.check(engine.llm._model.vocab, grammar)


def test_a_gbnf_grammar_and_a_regex_constrain_the_text(engine) -> None:  # type: ignore[no-untyped-def]
    text, _out, finish = _generate(engine, CHAT.format("Is the sky green?"),
                                   grammar='root ::= ("yes" | "no") "!"')
    assert text in ("yes!", "no!") and finish == "stop"
    grammar = engine.guides.to_gbnf("regex", r"[0-9]{3}\.[0-9]")
    text, _out, _finish = _generate(engine, CHAT.format("Give a number."), grammar=grammar)
    import re

    assert re.fullmatch(r"[0-9]{3}\.[0-9]", text)


def test_grammars_that_do_not_compile_are_bad_requests(engine) -> None:  # type: ignore[no-untyped-def]
    vocab = engine.llm._model.vocab
    for kind, text in (("ebnf_grammar", "root ::= undefined_rule"), ("ebnf_grammar", ""),
                       ("json_schema", "{not json"), ("lark", "start: 'a'")):
        with pytest.raises(ValueError, match="invalid request: guided_decoding_guide"):
            engine.guides.check(vocab, engine.guides.to_gbnf(kind, text))


def test_greedy_logprobs_equal_llama_cpps_own_and_top_k_is_sorted(engine) -> None:  # type: ignore[no-untyped-def]
    import llama_cpp as L
    import numpy as np

    prompt = CHAT.format("Name three colors.")
    _text, out, _finish = _generate(engine, prompt, logprobs=True, top_logprobs=5, max_tokens=8)
    # The same prompt and tokens decoded by llama.cpp directly on a context with the loop's
    # settings (the prompt in one batch, then one token at a time); log-softmax in numpy.
    params = L.llama_context_default_params()
    params.n_ctx, params.n_batch, params.n_ubatch, params.n_seq_max = 1024, 512, 512, 4
    params.n_threads = params.n_threads_batch = 1
    params.kv_unified = True
    ctx = L.llama_init_from_model(engine.llm._model.model, params)
    n_vocab = L.llama_vocab_n_tokens(engine.llm._model.vocab)
    ids = engine.llm.tokenize(prompt.encode(), add_bos=False, special=True)
    feed = [ids] + [[t] for t, _l, _top in out[:-1]]
    try:
        for i, ((token, logprob, top), chunk) in enumerate(zip(out, feed, strict=True)):
            arr = (L.llama_token * len(chunk))(*chunk)
            assert L.llama_decode(ctx, L.llama_batch_get_one(arr, len(chunk))) == 0
            logits = np.ctypeslib.as_array(L.llama_get_logits_ith(ctx, -1), shape=(n_vocab,)).astype(np.float64)
            expected = logits - logits.max() - np.log(np.exp(logits - logits.max()).sum())
            assert logprob == pytest.approx(float(expected[token]), abs=1e-4), i
            assert top[0][0] == token  # greedy: the sampled token is the likeliest
            values = [v for _t, v in top]
            assert values == sorted(values, reverse=True) and len(top) == 5
            assert [t for t, _v in top] == np.argsort(-expected, kind="stable")[:5].tolist()
    finally:
        L.llama_free(ctx)


def test_trying_the_free_sample_first_gives_what_the_grammar_over_every_token_gives(engine) -> None:  # type: ignore[no-untyped-def]
    """Greedy: the shortcut (sample freely, keep the token if the grammar allows it) must pick the
    token that sampling under the grammar over the whole vocabulary picks."""
    import ctypes

    import llama_cpp as L

    loop = engine.loop

    def grammar_first(seq, idx):  # type: ignore[no-untyped-def]
        arr = loop._candidates(idx)
        L.llama_sampler_apply(seq.grammar_sampler, ctypes.byref(arr))
        L.llama_sampler_apply(seq.sampler, ctypes.byref(arr))
        token = int(arr.data[arr.selected].id)
        L.llama_sampler_accept(seq.grammar_sampler, token)
        L.llama_sampler_accept(seq.sampler, token)
        return token

    prompts = [(CHAT.format("Tell me about a dog."), engine.guides.to_gbnf("json_schema", json.dumps(PERSON))),
               (CHAT.format("Count to five."), 'root ::= [0-9] (", " [0-9])*')]
    fast = [_generate(engine, p, grammar=g, max_tokens=40)[0] for p, g in prompts]
    loop._sample_guided = grammar_first
    try:
        slow = [_generate(engine, p, grammar=g, max_tokens=40)[0] for p, g in prompts]
    finally:
        del loop._sample_guided
    assert fast == slow and all(fast)


@pytest.mark.parametrize(("schema", "keyword"), [
    ({"type": "object", "properties": {"n": {"type": "integer", "minimum": 0, "maximum": 10}}}, "'minimum'"),
    ({"type": "array", "items": {"type": "number", "multipleOf": 2}}, "'multipleOf'"),
    ({"$defs": {"e": {"type": "string", "format": "email"}}, "$ref": "#/$defs/e"}, "'format': 'email'"),
    ({"anyOf": [{"type": "array", "uniqueItems": True}]}, "'uniqueItems'"),
])
def test_a_schema_keyword_the_grammar_would_drop_is_refused(engine, schema: dict, keyword: str) -> None:  # type: ignore[no-untyped-def,type-arg]
    with pytest.raises(ValueError, match="invalid request: guided_decoding_guide") as err:
        engine.guides.to_gbnf("json_schema", json.dumps(schema))
    assert keyword in str(err.value)


def test_property_names_and_annotations_are_not_mistaken_for_constraints(engine) -> None:  # type: ignore[no-untyped-def]
    schema = {"title": "T", "description": "d", "type": "object", "required": ["minimum"],
              "properties": {"minimum": {"type": "string", "format": "date", "default": "x"},
                             "not": {"type": "integer", "title": "n"}}}
    assert engine.guides.unenforced(schema) is None
    engine.guides.check(engine.llm._model.vocab, engine.guides.to_gbnf("json_schema", json.dumps(schema)))
