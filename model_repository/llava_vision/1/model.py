"""Reference vision-chat model: a Hugging Face LLaVA-architecture model (CUDA when present, else CPU).

Inputs follow NVIDIA's ``tensorrt_llm_bls`` names: ``text_input`` (the rendered prompt, with the
image token repeated where each image stood), ``max_tokens``, the optional sampling inputs, and
``image_input``: FP16 ``[n_images, 3, H, W]`` pixel values made by the gateway. Decoding runs
token by token with a KV cache, so it streams UTF-8-safe deltas, cuts stop strings and notices
cancellation within one token. Outputs: ``text_output`` (deltas when ``stream`` is true, else the
whole text once), ``num_input_tokens``, ``num_output_tokens`` and ``finish_reason`` ("stop" |
"length") on the last response. A bad request gets an error response; the stub lives on.
"""

from __future__ import annotations

import json
import os
import sys

import numpy as np
import triton_python_backend_utils as pb_utils

sys.path.insert(0, os.path.dirname(__file__))
from inputs import BadRequest, read_generation  # noqa: E402
from textstream import TextStream  # noqa: E402

_FINAL = pb_utils.TRITONSERVER_RESPONSE_COMPLETE_FINAL


class Detokenizer:
    """Token ids -> text deltas that never change once sent (the prefix/read offset method:
    re-decode a short window, release only text that is no longer a partial character)."""

    def __init__(self, tokenizer):
        self.tokenizer = tokenizer
        self.ids = []
        self.prefix = 0
        self.read = 0

    def push(self, token):
        self.ids.append(token)
        decode = self.tokenizer.decode
        before = decode(self.ids[self.prefix:self.read], skip_special_tokens=True)
        after = decode(self.ids[self.prefix:], skip_special_tokens=True)
        if len(after) > len(before) and not after.endswith("\ufffd"):
            self.prefix, self.read = self.read, len(self.ids)
            return after[len(before):]
        return ""


class TritonPythonModel:
    """One LLaVA model per instance; requests decode one at a time."""

    def initialize(self, args):
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        import torch
        from transformers import AutoTokenizer, GenerationConfig, LlavaForConditionalGeneration

        config = json.loads(args["model_config"])
        params = {k: v["string_value"] for k, v in config.get("parameters", {}).items()}
        path = params["hf_path"]
        if not os.path.isabs(path):
            path = os.path.join(args["model_repository"], path)
        self.torch = torch
        torch.set_num_threads(int(params.get("n_threads", "2")))
        self.device = "cuda" if torch.cuda.is_available() else "cpu"
        self.max_images = int(params.get("max_images", "4"))
        self.context_length = int(params.get("context_length", "2048"))
        self.tokenizer = AutoTokenizer.from_pretrained(path)
        self.model = LlavaForConditionalGeneration.from_pretrained(path).to(self.device).eval()
        self.dtype = next(self.model.parameters()).dtype
        cfg = self.model.config
        self.image_token_id = cfg.image_token_id
        vision = cfg.vision_config
        self.side = int(vision.image_size)
        cls = 1 if "clip" in vision.model_type else 0
        drop = 1 if cfg.vision_feature_select_strategy == "default" else 0
        self.per_image = (self.side // int(vision.patch_size)) ** 2 + cls - drop
        self.eos = {self.tokenizer.eos_token_id}
        try:
            eos = GenerationConfig.from_pretrained(path).eos_token_id
            self.eos |= set(eos if isinstance(eos, list) else [eos]) - {None}
        except OSError:
            pass
        self.logger = pb_utils.Logger
        self.served = 0
        self.cancelled = 0
        self.logger.log_info(f"llava_vision ready on {self.device}: {path}, {self.per_image} tokens per image")

    def execute(self, requests):
        for request in requests:
            sender = request.get_response_sender()
            try:
                with self.torch.inference_mode():
                    self._generate(request, sender)
            except BadRequest as exc:
                sender.send(pb_utils.InferenceResponse(error=pb_utils.TritonError(str(exc))), flags=_FINAL)
            except Exception as exc:  # keep the stub alive whatever one request does
                self.logger.log_error(f"llava_vision: request failed: {exc!r}")
                sender.send(
                    pb_utils.InferenceResponse(
                        error=pb_utils.TritonError(f"internal model error: {type(exc).__name__}")),
                    flags=_FINAL,
                )
        return None

    def _read(self, request):
        return {**read_generation(request, seed_bits=64), "images": self._images(request)}

    def _images(self, request):
        tensor = pb_utils.get_input_tensor_by_name(request, "image_input")
        if tensor is None:
            return None
        array = tensor.as_numpy()
        if array.ndim < 3 or array.shape[-3:] != (3, self.side, self.side):
            raise BadRequest(f"invalid request: image_input must be [n, 3, {self.side}, {self.side}], "
                             f"got {list(array.shape)}")
        array = array.reshape(-1, 3, self.side, self.side)
        if not 0 < array.shape[0] <= self.max_images:
            raise BadRequest(f"invalid request: 1 to {self.max_images} images per request, got {array.shape[0]}")
        if not np.isfinite(array).all():
            raise BadRequest("invalid request: image_input has NaN or infinite values")
        return self.torch.from_numpy(array.astype(np.float32)).to(self.device, self.dtype)

    def _prompt_ids(self, p):
        ids = self.tokenizer(p["prompt"], add_special_tokens=False, return_tensors="pt").input_ids
        n_tokens = int((ids == self.image_token_id).sum())
        n_images = 0 if p["images"] is None else p["images"].shape[0]
        if n_tokens != n_images * self.per_image:
            raise BadRequest(f"invalid request: the prompt has {n_tokens} image tokens; {n_images} images "
                             f"need {n_images * self.per_image} ({self.per_image} each)")
        if ids.shape[1] >= self.context_length:
            raise BadRequest(f"invalid request: prompt has {ids.shape[1]} tokens; "
                             f"the context window is {self.context_length}")
        return ids.to(self.device)

    def _sample(self, logits, p, generated, generator, prompt_ids=None):
        """One token. Repetition penalty counts prompt and output tokens (as Hugging Face, vLLM and
        TensorRT-LLM do); frequency and presence penalties count output tokens (OpenAI); until
        ``min_tokens`` tokens exist, end-of-sequence tokens cannot be drawn."""
        torch = self.torch
        logits = logits.float()
        if p["repetition_penalty"] != 1.0:
            seen = torch.tensor(generated, dtype=torch.long, device=logits.device)
            if prompt_ids is not None:
                seen = torch.cat([prompt_ids.reshape(-1).to(logits.device), seen])
            hit = torch.zeros_like(logits, dtype=torch.bool)
            hit[seen[(seen >= 0) & (seen < logits.numel())]] = True
            penalised = torch.where(logits > 0, logits / p["repetition_penalty"], logits * p["repetition_penalty"])
            logits = torch.where(hit, penalised, logits)
        if generated and (p["frequency_penalty"] or p["presence_penalty"]):
            seen = torch.tensor(generated, device=logits.device)
            counts = torch.bincount(seen, minlength=logits.numel())[:logits.numel()].to(logits.dtype)
            logits = logits - p["frequency_penalty"] * counts - p["presence_penalty"] * (counts > 0).to(logits.dtype)
        if len(generated) < p.get("min_tokens", 0):
            eos = [t for t in self.eos if 0 <= t < logits.numel()]
            logits[eos] = -float("inf")
        if p["temperature"] == 0:
            return int(torch.argmax(logits))
        logits = logits / p["temperature"]
        if p["top_k"] > 0:
            kth = torch.topk(logits, min(p["top_k"], logits.numel())).values[-1]
            logits = logits.masked_fill(logits < kth, -float("inf"))
        probs = torch.softmax(logits, dim=-1)
        if p["top_p"] < 1.0:
            sorted_probs, order = torch.sort(probs, descending=True)
            drop = torch.cumsum(sorted_probs, 0) - sorted_probs >= p["top_p"]
            probs = probs.index_fill(0, order[drop], 0.0)
            probs = probs / probs.sum()
        return int(torch.multinomial(probs.cpu(), 1, generator=generator))

    def _generate(self, request, sender):
        p = self._read(request)
        ids = self._prompt_ids(p)
        max_tokens = min(p["max_tokens"], self.context_length - ids.shape[1])
        generator = self.torch.Generator().manual_seed(p["seed"])
        stream, detok = TextStream(p["stop"]), Detokenizer(self.tokenizer)
        first, parts, generated, finish = "" if p["exclude_input"] else p["prompt"], [], [], "length"
        out = self.model(input_ids=ids, pixel_values=p["images"], use_cache=True)
        while len(generated) < max_tokens:
            if request.is_cancelled():
                self.cancelled += 1
                self.logger.log_info(f"llava_vision: request cancelled after {len(generated)} tokens "
                                     f"(cancelled total {self.cancelled})")
                sender.send(flags=_FINAL)
                return
            token = self._sample(out.logits[0, -1], p, generated, generator, ids)
            if token in self.eos:
                finish = "stop"
                break
            generated.append(token)
            piece = stream.push(detok.push(token).encode("utf-8"))
            if p["stream"] and (piece or first):
                sender.send(self._response(first + piece))
                first = ""
            elif not p["stream"]:
                parts.append(piece)
            if stream.stopped:
                finish = "stop"
                break
            step = self.torch.tensor([[token]], device=self.device)
            out = self.model(input_ids=step, past_key_values=out.past_key_values, use_cache=True)
        self.served += 1
        text = first + "".join(parts) + stream.flush()
        n_in = ids.shape[1] if p["return_counts"] else None
        sender.send(self._response(text, n_in, len(generated), finish), flags=_FINAL)

    @staticmethod
    def _response(text, n_in=None, n_out=None, finish=None):
        tensors = [pb_utils.Tensor("text_output", np.array([[text.encode("utf-8")]], dtype=np.object_))]
        if n_in is not None:
            tensors.append(pb_utils.Tensor("num_input_tokens", np.array([[n_in]], dtype=np.int32)))
            tensors.append(pb_utils.Tensor("num_output_tokens", np.array([[n_out]], dtype=np.int32)))
        if finish is not None:
            tensors.append(pb_utils.Tensor("finish_reason", np.array([[finish.encode()]], dtype=np.object_)))
        return pb_utils.InferenceResponse(output_tensors=tensors)

    def finalize(self):
        self.logger.log_info(f"llava_vision: served {self.served}, cancelled {self.cancelled}")
