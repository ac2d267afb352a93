"""Test double of NVIDIA's ``postprocessing`` with the byte-level tokenizer: each response's ids
become its bytes, which may end inside a UTF-8 character (the gateway must not split it)."""

import numpy as np
import triton_python_backend_utils as pb_utils


class TritonPythonModel:
    def execute(self, requests):
        responses = []
        for request in requests:
            tokens = pb_utils.get_input_tensor_by_name(request, "TOKENS_BATCH").as_numpy()
            lengths = pb_utils.get_input_tensor_by_name(request, "SEQUENCE_LENGTH").as_numpy()
            out = np.empty(lengths.shape, dtype=np.object_)
            for b in range(tokens.shape[0]):
                for beam in range(tokens.shape[1]):
                    out[b, beam] = bytes(int(t) for t in tokens[b, beam, :lengths[b, beam]])
            responses.append(pb_utils.InferenceResponse(output_tensors=[pb_utils.Tensor("OUTPUT", out)]))
        return responses
