"""Test double of NVIDIA's ``postprocessing``: decodes each response's tokens with the model's
tokenizer (``tokenizer_dir``, skipping special tokens) into UTF-8 strings, as NVIDIA's does.

In the ensemble a streamed response holds only its new tokens, so a character split across tokens
decodes as U+FFFD in each piece: clients of the ensemble path see U+FFFD where NVIDIA's would.
"""

import json
import os

import numpy as np
import triton_python_backend_utils as pb_utils
from tokenizers import Tokenizer


class TritonPythonModel:
    def initialize(self, args):
        params = json.loads(args["model_config"])["parameters"]
        folder = params["tokenizer_dir"]["string_value"]  # NVIDIA's reads it without a default
        self.tokenizer = Tokenizer.from_file(os.path.join(folder, "tokenizer.json"))
        skip = params.get("skip_special_tokens", {}).get("string_value", "true").lower()
        self.skip = skip in ("true", "1", "t", "y", "yes")

    def execute(self, requests):
        responses = []
        for request in requests:
            tokens = pb_utils.get_input_tensor_by_name(request, "TOKENS_BATCH").as_numpy()
            lengths = pb_utils.get_input_tensor_by_name(request, "SEQUENCE_LENGTH").as_numpy()
            out = np.empty(lengths.shape, dtype=np.object_)
            for b in range(tokens.shape[0]):
                for beam in range(tokens.shape[1]):
                    ids = [int(t) for t in tokens[b, beam, :lengths[b, beam]]]
                    out[b, beam] = self.tokenizer.decode(ids, skip_special_tokens=self.skip).encode("utf8")
            responses.append(pb_utils.InferenceResponse(output_tensors=[pb_utils.Tensor("OUTPUT", out)]))
        return responses
