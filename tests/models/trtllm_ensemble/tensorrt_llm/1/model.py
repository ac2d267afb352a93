"""Test double of NVIDIA's C++ ``tensorrt_llm`` model, in Python, behind our own config for it.

Echoes the prompt's token ids as its generation. Like the C++ backend: with ``streaming`` one
response per token holding only that token, the final flag on the last data response; without it
one response with every token (the prompt's too unless ``exclude_input_in_output``);
``num_output_tokens`` counts the tokens of each response; a stop word ends generation and stays
in the output; a cancelled request stops at the next token. Like the executor, a prompt longer
than the engine's max_input_len is rejected and ``request_output_len`` is clamped to
max_seq_len - prompt (the limits: ``mimic_max_input_len``/``mimic_max_seq_len`` parameters).
With ``return_log_probs``, ``output_log_probs`` FP32 ``[1, beams=1, tokens]`` and
``cum_log_probs`` ``[1, 1]`` for the response's tokens (``-0.125 * (1 + id % 8)`` each, as the
BLS double). A known ``guided_decoding_guide_type`` is logged with its guide
(``trtllm_core_mimic guide=<type>:<guide>``); unknown types are ignored, as NVIDIA's backend does.
"""

import json
import time

import numpy as np
import triton_python_backend_utils as pb_utils

_FINAL = pb_utils.TRITONSERVER_RESPONSE_COMPLETE_FINAL


def _array(request, name):
    t = pb_utils.get_input_tensor_by_name(request, name)
    return None if t is None else t.as_numpy()


def _scalar(request, name, default):
    a = _array(request, name)
    return default if a is None or a.size == 0 else a.reshape(-1)[0]


def _stop_words(request):
    a = _array(request, "stop_words_list")
    if a is None:
        return []
    ids, offsets = a.reshape(2, -1)
    words, start = [], 0
    for end in offsets:
        if end < 0:
            break
        words.append([int(x) for x in ids[start:end]])
        start = end
    return [w for w in words if w]


class TritonPythonModel:
    def initialize(self, args):
        params = json.loads(args["model_config"]).get("parameters", {})
        self.delay = float(params.get("mimic_delay_s", {}).get("string_value", "0.005"))
        self.max_input_len = int(params["mimic_max_input_len"]["string_value"])
        self.max_seq_len = int(params["mimic_max_seq_len"]["string_value"])

    def execute(self, requests):
        for request in requests:
            self._one(request)
        return None

    def _response(self, request, tokens, n_in, n_out):
        out = [pb_utils.Tensor("output_ids", np.array([[tokens]], dtype=np.int32).reshape(1, 1, -1)),
               pb_utils.Tensor("sequence_length", np.array([[len(tokens)]], dtype=np.int32))]
        if _scalar(request, "return_num_input_tokens", False):
            out.append(pb_utils.Tensor("num_input_tokens", np.array([[n_in]], dtype=np.int32)))
        if _scalar(request, "return_num_output_tokens", False):
            out.append(pb_utils.Tensor("num_output_tokens", np.array([[n_out]], dtype=np.int32)))
        if _scalar(request, "return_log_probs", False):
            new = tokens[-n_out:] if n_out else []
            values = np.array([[[-0.125 * (1 + t % 8) for t in new]]], dtype=np.float32)
            out.append(pb_utils.Tensor("output_log_probs", values))
            out.append(pb_utils.Tensor("cum_log_probs", values.sum(axis=2)))
        return pb_utils.InferenceResponse(output_tensors=out)

    def _one(self, request):
        sender = request.get_response_sender()
        kind = _scalar(request, "guided_decoding_guide_type", b"")
        if kind and kind.decode() in ("json", "json_schema", "regex", "ebnf_grammar"):
            guide = _scalar(request, "guided_decoding_guide", b"").decode()
            pb_utils.Logger.log_info(f"trtllm_core_mimic guide={kind.decode()}:{guide}")
        length = int(_scalar(request, "input_lengths", 0))
        prompt = [int(x) for x in _array(request, "input_ids").reshape(-1)[:length]]
        if length > self.max_input_len:
            error = pb_utils.TritonError(
                f"Prompt length ({length}) exceeds maximum input length ({self.max_input_len}).")
            sender.send(pb_utils.InferenceResponse(error=error), flags=_FINAL)
            return
        limit = min(int(_scalar(request, "request_output_len", 16)), self.max_seq_len - length)
        streaming = bool(_scalar(request, "streaming", False))
        end_id = int(_scalar(request, "end_id", -1))
        stops = _stop_words(request)
        generated, final_sent = [], False
        for token in prompt[:limit]:
            time.sleep(self.delay)
            if request.is_cancelled():
                pb_utils.Logger.log_info("trtllm_core_mimic: request cancelled")
                sender.send(flags=_FINAL)
                return
            if token == end_id:
                break
            generated.append(token)
            done = (len(generated) == min(limit, len(prompt))
                    or any(generated[-len(w):] == w for w in stops))
            if streaming:
                sender.send(self._response(request, [token], len(prompt), 1), flags=_FINAL if done else 0)
                final_sent = done
            if done:
                break
        if not streaming:
            tokens = generated if _scalar(request, "exclude_input_in_output", False) else prompt + generated
            sender.send(self._response(request, tokens, len(prompt), len(tokens)), flags=_FINAL)
        elif not final_sent:
            sender.send(flags=_FINAL)
