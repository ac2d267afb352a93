"""Reference embedding model: sentence-transformers on CPU or CUDA, normalised vectors.

Triton's dynamic batcher hands ``execute`` several requests at once; they run as one forward
pass. A ``KIND_GPU`` instance runs on its GPU, a ``KIND_CPU`` instance on the CPU with
``n_threads`` torch threads. ``num_tokens`` is each input's full token count (special tokens
included, before the model's own truncation), so the gateway can bill and refuse over-long inputs.
"""

import json
import os

import numpy as np
import triton_python_backend_utils as pb_utils


class TritonPythonModel:
    def initialize(self, args):
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        params = {k: v["string_value"] for k, v in json.loads(args["model_config"]).get("parameters", {}).items()}
        threads = params.get("n_threads", "1")
        # Each instance is its own process: set OpenMP's pool before torch loads it. Threads that
        # sleep at once, instead of spinning, leave the cores to the other instances and Triton.
        os.environ["OMP_NUM_THREADS"] = threads
        os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
        import torch
        from sentence_transformers import SentenceTransformer

        path = params["model_path"]
        if not os.path.isabs(path):
            path = os.path.join(args["model_repository"], path)
        if args.get("model_instance_kind") == "GPU":
            device = f"cuda:{args['model_instance_device_id']}"
        else:
            device = "cpu"
            torch.set_num_threads(int(threads))
        self.model = SentenceTransformer(path, device=device)
        self.tokenizer = self.model.tokenizer
        pb_utils.Logger.log_info(f"st_embedding ready on {device}: {path}")

    def execute(self, requests):
        texts, sizes, responses = [], [], [None] * len(requests)
        for i, request in enumerate(requests):
            raw = pb_utils.get_input_tensor_by_name(request, "text_input").as_numpy().reshape(-1)
            try:
                batch = [x.decode("utf-8") if isinstance(x, bytes) else str(x) for x in raw]
            except UnicodeDecodeError:
                responses[i] = pb_utils.InferenceResponse(
                    error=pb_utils.TritonError("invalid request: text_input is not valid UTF-8"))
                batch = []
            texts.extend(batch)
            sizes.append(len(batch))
        if texts:
            vectors = self.model.encode(texts, batch_size=len(texts), normalize_embeddings=True,
                                        convert_to_numpy=True).astype(np.float32)
            counts = [len(ids) for ids in self.tokenizer(texts, truncation=False)["input_ids"]]
        start = 0
        for i, n in enumerate(sizes):
            if responses[i] is not None:
                continue
            out = [pb_utils.Tensor("embedding", vectors[start:start + n]),
                   pb_utils.Tensor("num_tokens", np.array(counts[start:start + n], dtype=np.int32).reshape(n, 1))]
            responses[i] = pb_utils.InferenceResponse(output_tensors=out)
            start += n
        return responses
