"""Test model on the chat tensor contract: echoes the prompt word by word, instantly or slowly.

Modes (config parameter ``mode``): ``echo`` (instant), ``slow`` (``delay_s`` per word, stops
on cancellation), ``fail`` (an error response), ``hang`` (answers nothing until cancelled).
"""

import json
import time

import numpy as np
import triton_python_backend_utils as pb_utils

_FINAL = pb_utils.TRITONSERVER_RESPONSE_COMPLETE_FINAL


def _scalar(request, name, default):
    t = pb_utils.get_input_tensor_by_name(request, name)
    return default if t is None else t.as_numpy().reshape(-1)[0]


def _text(value):
    return np.array([[value.encode("utf-8")]], dtype=np.object_)


class TritonPythonModel:
    def initialize(self, args):
        params = json.loads(args["model_config"]).get("parameters", {})
        self.mode = params.get("mode", {}).get("string_value", "echo")
        self.delay = float(params.get("delay_s", {}).get("string_value", "0.05"))
        self.cancelled = 0

    def execute(self, requests):
        for request in requests:
            sender = request.get_response_sender()
            if self.mode == "fail":
                sender.send(pb_utils.InferenceResponse(error=pb_utils.TritonError("model exploded")), flags=_FINAL)
                continue
            prompt = _scalar(request, "text_input", b"").decode("utf-8")
            max_tokens = int(_scalar(request, "max_tokens", 16))
            stream = bool(_scalar(request, "stream", False))
            words = prompt.split(" ")
            pieces = [w if i == 0 else " " + w for i, w in enumerate(words)][:max_tokens]
            sent, finish = 0, ("length" if len(words) > max_tokens else "stop")
            for piece in pieces:
                if self.mode in ("slow", "hang"):
                    waited = 0.0
                    while waited < (1e9 if self.mode == "hang" else self.delay):
                        if request.is_cancelled():
                            break
                        time.sleep(0.01)
                        waited += 0.01
                if request.is_cancelled():
                    self.cancelled += 1
                    pb_utils.Logger.log_info(f"echo: request cancelled after {sent} tokens (cancelled total {self.cancelled})")
                    sender.send(flags=_FINAL)
                    break
                if stream:
                    sender.send(pb_utils.InferenceResponse(output_tensors=[pb_utils.Tensor("text_output", _text(piece))]))
                sent += 1
            else:
                text = "" if stream else "".join(pieces)
                out = [pb_utils.Tensor("text_output", _text(text)),
                       pb_utils.Tensor("num_input_tokens", np.array([[len(words)]], dtype=np.int32)),
                       pb_utils.Tensor("num_output_tokens", np.array([[sent]], dtype=np.int32)),
                       pb_utils.Tensor("finish_reason", _text(finish))]
                sender.send(pb_utils.InferenceResponse(output_tensors=out), flags=_FINAL)
        return None
