"""Real tritonclient ``InferResult`` objects built from protobufs, as a Triton stream would yield them.

The lowest seam below the gateway's Triton package: everything above it (reading tensors,
decoding text, counting) runs for real in unit tests, without a server.
"""

from __future__ import annotations

import numpy as np
from tritonclient.grpc import InferResult, service_pb2
from tritonclient.utils import serialize_byte_tensor


def infer_result(text: bytes | str | None = None, *, final: bool = False,
                 input_tokens: int | None = None, output_tokens: int | None = None,
                 finish_reason: str | None = None) -> InferResult:
    """One stream response with the given outputs and the ``triton_final_response`` flag."""
    pb = service_pb2.ModelInferResponse(model_name="m", id="r")

    def add(name: str, datatype: str, raw: bytes) -> None:
        pb.outputs.add(name=name, datatype=datatype, shape=[1, 1])
        pb.raw_output_contents.append(raw)

    if text is not None:
        data = text.encode() if isinstance(text, str) else text
        add("text_output", "BYTES", serialize_byte_tensor(np.array([[data]], dtype=object)).item())
    for name, value in (("num_input_tokens", input_tokens), ("num_output_tokens", output_tokens)):
        if value is not None:
            add(name, "INT32", np.array([[value]], dtype=np.int32).tobytes())
    if finish_reason is not None:
        add("finish_reason", "BYTES",
            serialize_byte_tensor(np.array([[finish_reason.encode()]], dtype=object)).item())
    pb.parameters["triton_final_response"].bool_param = final
    return InferResult(pb)
