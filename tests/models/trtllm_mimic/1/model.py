"""Test double of NVIDIA's TensorRT-LLM Triton models, at their exact tensor interfaces.

``contract`` parameter: ``bls`` mimics ``tensorrt_llm_bls`` with ``accumulate_tokens`` (streamed
``text_output`` is the whole text so far; token counts only when ``return_num_*_tokens`` ask; no
finish reason); ``llmapi`` mimics the LLM API (PyTorch backend) model (``sampling_param_*``
inputs, ``streaming``, cumulative text, ``finish_reason`` output, no token counts). The "model"
echoes the prompt's words, one word per token, so tests know exactly what to expect.
"""

import json
import time

import numpy as np
import triton_python_backend_utils as pb_utils

_FINAL = pb_utils.TRITONSERVER_RESPONSE_COMPLETE_FINAL


def _get(request, name, default=None):
    t = pb_utils.get_input_tensor_by_name(request, name)
    if t is None:
        return default
    a = t.as_numpy().reshape(-1)
    return a[0] if a.size else default


def _strings(request, name):
    t = pb_utils.get_input_tensor_by_name(request, name)
    return [] if t is None else [x.decode() for x in t.as_numpy().reshape(-1) if x]


class TritonPythonModel:
    def initialize(self, args):
        config = json.loads(args["model_config"])
        params = {k: v["string_value"] for k, v in config.get("parameters", {}).items()}
        self.contract = params.get("contract", "bls")
        self.delay = float(params.get("delay_s", "0.01"))
        self.batched = int(config.get("max_batch_size", 0)) > 0
        self.cancelled = 0

    def _text(self, value):
        array = np.array([value.encode()], dtype=np.object_)
        return array.reshape(1, 1) if self.batched else array

    def _int(self, value):
        array = np.array([value], dtype=np.int32)
        return array.reshape(1, 1) if self.batched else array

    def _read(self, request):
        prompt = _get(request, "text_input")
        if prompt is None:
            raise ValueError("text_input is required")
        if self.contract == "bls":
            max_tokens = _get(request, "max_tokens")
            stream = bool(_get(request, "stream", False))
            stops = _strings(request, "stop_words")
            exclude = bool(_get(request, "exclude_input_in_output", False))
        else:
            max_tokens = _get(request, "sampling_param_max_tokens", 16)
            stream = bool(_get(request, "streaming", False))
            stops = _strings(request, "sampling_param_stop")
            exclude = bool(_get(request, "sampling_param_exclude_input_from_output", False))
        if max_tokens is None or int(max_tokens) <= 0:
            raise ValueError("max_tokens must be a single value > 0")
        return prompt.decode(), int(max_tokens), stream, stops, exclude

    def execute(self, requests):
        for request in requests:
            sender = request.get_response_sender()
            try:
                self._run(request, sender, *self._read(request))
            except ValueError as exc:
                sender.send(pb_utils.InferenceResponse(error=pb_utils.TritonError(str(exc))), flags=_FINAL)
        return None

    def _run(self, request, sender, prompt, max_tokens, stream, stops, exclude):
        words = prompt.split()
        head = "" if exclude else prompt
        text, produced, finish = "", 0, "length"
        for word in words[:max_tokens]:
            time.sleep(self.delay)
            if request.is_cancelled():
                self.cancelled += 1
                pb_utils.Logger.log_info(f"trtllm_mimic: request cancelled after {produced} tokens")
                sender.send(flags=_FINAL)
                return
            candidate = (text + " " + word) if text else word
            cut = min((candidate.find(s) for s in stops if s in candidate), default=-1)
            if cut >= 0:
                text, finish = candidate[:cut], "stop"
                produced += 1
                break
            text, produced = candidate, produced + 1
            if stream:
                sender.send(self._response(request, head + text, None))
        else:
            finish = "length" if len(words) > max_tokens else "stop"
        sender.send(self._response(request, head + text, (len(words), produced, finish)), flags=_FINAL)

    def _response(self, request, text, final):
        out = [pb_utils.Tensor("text_output", self._text(text))]
        if final is not None and self.contract == "bls":
            if _get(request, "return_num_input_tokens", False):
                out.append(pb_utils.Tensor("num_input_tokens", self._int(final[0])))
            if _get(request, "return_num_output_tokens", False):
                out.append(pb_utils.Tensor("num_output_tokens", self._int(final[1])))
        if final is not None and self.contract == "llmapi" and _get(request, "return_finish_reason", False):
            out.append(pb_utils.Tensor("finish_reason", self._text(final[2])))
        return pb_utils.InferenceResponse(output_tensors=out)
