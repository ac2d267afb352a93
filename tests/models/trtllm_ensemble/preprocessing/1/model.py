"""Test double of NVIDIA's ``preprocessing``: tokenizes with the model's tokenizer (``tokenizer_dir``).

Produces the outputs NVIDIA's ensemble maps, in NVIDIA's shapes (stop/bad words in the
``[batch, 2, n]`` flat-ids-and-offsets layout, each word encoded without special tokens), so our
ensemble config is exercised for real. Like NVIDIA's, special tokens are added to the prompt only
when ``add_special_tokens`` says so; the end id is the tokenizer's EOS token.
"""

import json
import os

import numpy as np
import triton_python_backend_utils as pb_utils
from tokenizers import Tokenizer


def _tensor(request, name):
    t = pb_utils.get_input_tensor_by_name(request, name)
    return None if t is None else t.as_numpy()


def word_list(tokenizer, words, batch):
    """NVIDIA's layout: row 0 the concatenated ids, row 1 the end offsets, padded with 0 / -1."""
    rows = []
    for item in range(batch):
        ids, offsets = [], []
        for word in ([] if words is None else words[item]):
            if word:
                ids.extend(tokenizer.encode(word.decode(), add_special_tokens=False).ids)
                offsets.append(len(ids))
        rows.append((ids, offsets))
    width = max([1] + [len(ids) for ids, _ in rows])
    out = np.zeros((batch, 2, width), dtype=np.int32)
    out[:, 1, :] = -1
    for i, (ids, offsets) in enumerate(rows):
        out[i, 0, :len(ids)] = ids
        out[i, 1, :len(offsets)] = offsets
    return out


class TritonPythonModel:
    def initialize(self, args):
        params = json.loads(args["model_config"])["parameters"]
        folder = params["tokenizer_dir"]["string_value"]
        self.tokenizer = Tokenizer.from_file(os.path.join(folder, "tokenizer.json"))
        config = json.load(open(os.path.join(folder, "tokenizer_config.json")))
        self.end_id = self.tokenizer.token_to_id(config["eos_token"])
        self.pad_id = self.tokenizer.token_to_id(config["pad_token"])
        add = params.get("add_special_tokens", {}).get("string_value", "true").lower()
        self.add_special = add in ("true", "1", "t", "y", "yes")

    def execute(self, requests):
        return [self._one(request) for request in requests]

    def _one(self, request):
        query = _tensor(request, "QUERY")
        batch = query.shape[0]
        ids = [self.tokenizer.encode(row[0].decode(), add_special_tokens=self.add_special).ids for row in query]
        width = max(1, max(len(x) for x in ids))
        input_id = np.zeros((batch, width), dtype=np.int32)
        for i, row in enumerate(ids):
            input_id[i, :len(row)] = row
        ones = np.ones((batch, 1), dtype=np.int32)
        tensors = {
            "INPUT_ID": input_id,
            "REQUEST_INPUT_LEN": np.array([[len(x)] for x in ids], dtype=np.int32),
            "DECODER_INPUT_ID": np.zeros((batch, 1), dtype=np.int32),
            "REQUEST_DECODER_INPUT_LEN": ones,
            "REQUEST_OUTPUT_LEN": _tensor(request, "REQUEST_OUTPUT_LEN").astype(np.int32),
            "STOP_WORDS_IDS": word_list(self.tokenizer, _tensor(request, "STOP_WORDS_DICT"), batch),
            "BAD_WORDS_IDS": word_list(self.tokenizer, _tensor(request, "BAD_WORDS_DICT"), batch),
            "EMBEDDING_BIAS": np.zeros((batch, 0), dtype=np.float32),
            "OUT_END_ID": ones * self.end_id,
            "OUT_PAD_ID": ones * self.pad_id,
        }
        return pb_utils.InferenceResponse(
            output_tensors=[pb_utils.Tensor(name, value) for name, value in tensors.items()])
