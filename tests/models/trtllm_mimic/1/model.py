"""Test double of NVIDIA's TensorRT-LLM front models, at their exact tensor interfaces and habits.

Config parameter ``contract``:

* ``bls``: ``tensorrt_llm_bls`` with ``accumulate_tokens`` (current triton_backend). The engine's
  tokens are accumulated and the whole list decoded at every step, as NVIDIA's postprocessing
  does, so every streamed ``text_output`` is the whole text so far and a character split across
  tokens first shows as U+FFFD; ``num_input_tokens``/``num_output_tokens`` come only when
  ``return_num_*`` ask, and count per response (a streamed one: its new token); a stop word ends
  generation (matched on token ids, as the engine does) but stays in the text; after the data an
  empty response carries the final flag; errors are an error response then the final flag;
  cancellation is not checked.
* ``bls_legacy``: the same with the older names (``random_seed``, ``min_length``) and no counts.
* ``llmapi``: the LLM API (PyTorch backend) model: ``sampling_param_*`` inputs, ``streaming``,
  cumulative decoded text, ``finish_reason`` ("None" until finished) when asked, no counts, the
  final flag on the last data response, cancellation checked, stop strings cut off.

Rejected like the real models: a prompt longer than the engine's ``max_input_len`` (the C++
executor's "Prompt length (N) exceeds maximum input length (M)"), ``max_tokens`` below 1; the LLM
API rejects prompt + ``max_tokens`` over ``max_seq_len``. The engine clamps ``max_tokens`` to
``max_seq_len`` - prompt, as the executor does.

Log-probabilities: with ``return_log_probs`` the BLS doubles add ``output_log_probs`` FP32
``[1, beams=1, tokens]`` for each response's new tokens (``cum_log_probs`` ``[1, 1]``), each
token's value being ``logprob(id)`` below; the LLM API double has no such input. Guided decoding:
the BLS doubles log ``guide=<type>:<guide>`` for each request with a known guide type and, like
NVIDIA's, ignore unknown types silently; the echo is not constrained.

The "model" echoes the prompt's tokens (tokenizer: the ``tokenizer_path`` parameter, a byte-fallback
tokenizer.json), so tests know what to expect. Each request logs its input names
(``trtllm_mimic[<model>] inputs=...``) for tests to read.
"""

import json
import time

import numpy as np
import triton_python_backend_utils as pb_utils
from tokenizers import Tokenizer

_FINAL = pb_utils.TRITONSERVER_RESPONSE_COMPLETE_FINAL


def _get(request, name, default=None):
    t = pb_utils.get_input_tensor_by_name(request, name)
    if t is None:
        return default
    a = t.as_numpy().reshape(-1)
    return a[0] if a.size else default


def logprob(token_id):
    """The doubles' log-probability for a token id (tests compute the same)."""
    return -0.125 * (1 + token_id % 8)


def _strings(request, name):
    t = pb_utils.get_input_tensor_by_name(request, name)
    return [] if t is None else [x.decode() for x in t.as_numpy().reshape(-1) if x]


class TritonPythonModel:
    def initialize(self, args):
        config = json.loads(args["model_config"])
        params = {k: v["string_value"] for k, v in config.get("parameters", {}).items()}
        self.name = config["name"]
        self.contract = params.get("contract", "bls")
        self.delay = float(params.get("delay_s", "0.01"))
        self.batched = int(config.get("max_batch_size", 0)) > 0
        self.tokenizer = Tokenizer.from_file(params["tokenizer_path"])
        self.max_input_len = int(params["max_input_len"])
        self.max_seq_len = int(params["max_seq_len"])

    def _text(self, value):
        array = np.array([value.encode()], dtype=np.object_)
        return array.reshape(1, 1) if self.batched else array

    def _int(self, value):
        return np.array([[value]], dtype=np.int32)

    def _encode(self, text):
        return self.tokenizer.encode(text, add_special_tokens=False).ids

    def _decode(self, ids):
        return self.tokenizer.decode(ids, skip_special_tokens=True)

    def _read(self, request):
        prompt = _get(request, "text_input")
        if prompt is None:
            raise ValueError("text_input is required")
        if self.contract == "llmapi":
            max_tokens = _get(request, "sampling_param_max_tokens", 32)  # LLM API default
            stream = bool(_get(request, "streaming", False))
            stops = _strings(request, "sampling_param_stop")
            exclude = bool(_get(request, "sampling_param_exclude_input_from_output", False))
        else:
            max_tokens = _get(request, "max_tokens")
            stream = bool(_get(request, "stream", False))
            stops = _strings(request, "stop_words")
            # The old BLS has no such input: the core's config decides (build_engines: true).
            exclude = bool(_get(request, "exclude_input_in_output", self.contract == "bls_legacy"))
        if max_tokens is None or int(max_tokens) <= 0:
            raise ValueError("max_tokens must be a single value > 0")
        ids = self._encode(prompt.decode())
        if self.contract == "llmapi":
            if len(ids) + int(max_tokens) > self.max_seq_len:
                raise ValueError(f"The sum of prompt length ({len(ids)}) and max_tokens ({int(max_tokens)}) "
                                 f"should not exceed max_seq_len ({self.max_seq_len})")
        elif len(ids) > self.max_input_len:
            raise ValueError(f"Prompt length ({len(ids)}) exceeds maximum input length ({self.max_input_len}).")
        else:
            max_tokens = min(int(max_tokens), self.max_seq_len - len(ids))
        return prompt.decode(), ids, int(max_tokens), stream, stops, exclude

    def execute(self, requests):
        for request in requests:
            names = ",".join(sorted(t.name() for t in request.inputs()))
            pb_utils.Logger.log_info(f"trtllm_mimic[{self.name}] inputs={names}")
            kind = _get(request, "guided_decoding_guide_type")
            if kind is not None and kind.decode() in ("json", "json_schema", "regex", "ebnf_grammar"):
                guide = _get(request, "guided_decoding_guide", b"").decode()
                pb_utils.Logger.log_info(f"trtllm_mimic[{self.name}] guide={kind.decode()}:{guide}")
            sender = request.get_response_sender()
            try:
                args = self._read(request)
            except ValueError as exc:
                error = pb_utils.InferenceResponse(error=pb_utils.TritonError(str(exc)))
                if self.contract == "llmapi":
                    sender.send(error, flags=_FINAL)
                else:  # the BLS sends the error, then the final flag alone
                    sender.send(error)
                    sender.send(flags=_FINAL)
                continue
            if self.contract == "llmapi":
                self._run_llmapi(request, sender, *args)
            else:
                self._run_bls(request, sender, *args)
        return None

    def _run_bls(self, request, sender, prompt, ids, max_tokens, stream, stops, exclude):
        stop_ids = [self._encode(s) for s in stops]
        generated = []
        for token in ids[:max_tokens]:
            time.sleep(self.delay)
            generated.append(token)
            if stream:  # accumulate_tokens: the whole list decoded again
                sender.send(self._bls_response(request, self._decode(generated), len(ids), 1, [token]))
            if any(w and generated[-len(w):] == w for w in stop_ids):
                break
        if not stream:
            tokens = generated if exclude else ids + generated
            sender.send(self._bls_response(request, self._decode(tokens), len(ids), len(tokens), generated))
        sender.send(flags=_FINAL)

    def _bls_response(self, request, text, n_in, n_out, new_ids=()):
        out = [pb_utils.Tensor("text_output", self._text(text))]
        if _get(request, "return_log_probs", False):
            values = np.array([[[logprob(t) for t in new_ids]]], dtype=np.float32)
            out.append(pb_utils.Tensor("output_log_probs", values))
            out.append(pb_utils.Tensor("cum_log_probs", values.sum(axis=2)))
        if self.contract == "bls" and _get(request, "return_num_input_tokens", False):
            out.append(pb_utils.Tensor("num_input_tokens", self._int(n_in)))
        if self.contract == "bls" and _get(request, "return_num_output_tokens", False):
            out.append(pb_utils.Tensor("num_output_tokens", self._int(n_out)))
        return pb_utils.InferenceResponse(output_tensors=out)

    def _run_llmapi(self, request, sender, prompt, ids, max_tokens, stream, stops, exclude):
        head = "" if exclude else prompt
        generated, text = [], ""
        finish = "length" if len(ids) > max_tokens else "stop"
        last = min(len(ids), max_tokens) - 1
        for i, token in enumerate(ids[:max_tokens]):
            time.sleep(self.delay)
            if request.is_cancelled():
                pb_utils.Logger.log_info(f"trtllm_mimic[{self.name}]: request cancelled")
                cancelled = pb_utils.TritonError("Request cancelled by client", pb_utils.TritonError.CANCELLED)
                sender.send(pb_utils.InferenceResponse(error=cancelled), flags=_FINAL)
                return
            generated.append(token)
            text = self._decode(generated)  # CompletionOutput.text: all tokens decoded
            cut = min((text.find(s) for s in stops if s in text), default=-1)
            if cut >= 0:  # the LLM API leaves the stop string out
                text, finish = text[:cut], "stop"
                break
            if stream and i != last:
                sender.send(self._llmapi_response(request, head + text, "None"))
        sender.send(self._llmapi_response(request, head + text, finish), flags=_FINAL)

    def _llmapi_response(self, request, text, finish):
        out = [pb_utils.Tensor("text_output", self._text(text))]
        if _get(request, "return_finish_reason", False):
            out.append(pb_utils.Tensor("finish_reason", self._text(finish)))
        return pb_utils.InferenceResponse(output_tensors=out)
