"""Reference vision-chat model: a Hugging Face LLaVA-architecture model (CUDA when present, else CPU).

Takes the rendered prompt (with the image token repeated where each image stood) and
``image_input`` pixel values made by the gateway, and decodes token by token with a KV cache, so
it can stream UTF-8-safe deltas, stop on stop strings and honour cancellation within a token.
"""

import json
import os
import sys

import numpy as np
import triton_python_backend_utils as pb_utils

sys.path.insert(0, os.path.dirname(__file__))
from textstream import TextStream  # noqa: E402

_FINAL = pb_utils.TRITONSERVER_RESPONSE_COMPLETE_FINAL


class BadRequest(ValueError):
    pass


def _get(request, name, default=None):
    t = pb_utils.get_input_tensor_by_name(request, name)
    if t is None:
        return default
    a = t.as_numpy()
    return a.reshape(-1)[0] if a.size else default


class TritonPythonModel:
    def initialize(self, args):
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        import torch
        from transformers import AutoTokenizer, LlavaForConditionalGeneration

        params = {k: v["string_value"] for k, v in json.loads(args["model_config"]).get("parameters", {}).items()}
        path = params["hf_path"]
        if not os.path.isabs(path):
            path = os.path.join(args["model_repository"], path)
        self.torch = torch
        self.device = "cuda" if torch.cuda.is_available() else "cpu"
        self.max_images = int(params.get("max_images", "4"))
        self.tokenizer = AutoTokenizer.from_pretrained(path)
        self.model = LlavaForConditionalGeneration.from_pretrained(path).to(self.device).eval()
        self.dtype = next(self.model.parameters()).dtype
        self.image_token_id = self.model.config.image_token_id
        self.eos = {self.tokenizer.eos_token_id}
        pb_utils.Logger.log_info(f"llava_vision ready on {self.device}: {path}")

    def execute(self, requests):
        for request in requests:
            sender = request.get_response_sender()
            try:
                with self.torch.inference_mode():
                    self._generate(request, sender)
            except BadRequest as exc:
                sender.send(pb_utils.InferenceResponse(error=pb_utils.TritonError(f"invalid request: {exc}")), flags=_FINAL)
            except Exception as exc:  # keep the stub alive
                pb_utils.Logger.log_error(f"llava_vision: {exc!r}")
                sender.send(pb_utils.InferenceResponse(error=pb_utils.TritonError(f"internal model error: {type(exc).__name__}")), flags=_FINAL)
        return None

    def _inputs(self, request):
        prompt = _get(request, "text_input")
        max_tokens = _get(request, "max_tokens")
        if prompt is None or max_tokens is None or int(max_tokens) < 1:
            raise BadRequest("text_input and a positive max_tokens are required")
        ids = self.tokenizer(prompt.decode("utf-8"), add_special_tokens=False, return_tensors="pt").input_ids
        n_tokens = int((ids == self.image_token_id).sum())
        pixels = pb_utils.get_input_tensor_by_name(request, "image_input")
        images = None
        if pixels is not None:
            array = pixels.as_numpy()
            array = array.reshape(-1, *array.shape[-3:])
            if array.shape[0] > self.max_images:
                raise BadRequest(f"at most {self.max_images} images")
            images = self.torch.from_numpy(array.astype(np.float32)).to(self.device, self.dtype)
        n_images = 0 if images is None else images.shape[0]
        per_image = n_tokens // max(n_images, 1)
        if (n_tokens and n_images == 0) or (n_images and n_tokens != per_image * n_images):
            raise BadRequest(f"prompt has {n_tokens} image tokens for {n_images} images")
        return ids.to(self.device), images, int(max_tokens)

    def _sample(self, logits, temperature, top_k, top_p, generator):
        torch = self.torch
        if temperature <= 0:
            return int(torch.argmax(logits))
        logits = logits.float() / temperature
        if top_k > 0:
            kth = torch.topk(logits, min(top_k, logits.numel())).values[-1]
            logits[logits < kth] = -float("inf")
        probs = torch.softmax(logits, dim=-1)
        if top_p < 1.0:
            sorted_probs, order = torch.sort(probs, descending=True)
            keep = torch.cumsum(sorted_probs, 0) - sorted_probs < top_p
            mask = torch.zeros_like(probs, dtype=torch.bool)
            mask[order[keep]] = True
            probs = torch.where(mask, probs, torch.zeros_like(probs))
            probs = probs / probs.sum()
        return int(torch.multinomial(probs.cpu(), 1, generator=generator))

    def _generate(self, request, sender):
        ids, images, max_tokens = self._inputs(request)
        stream_mode = bool(_get(request, "stream", False))
        temperature = float(_get(request, "temperature", 1.0))
        top_k, top_p = int(_get(request, "top_k", 0)), float(_get(request, "top_p", 1.0))
        seed = _get(request, "seed")
        generator = self.torch.Generator().manual_seed(int(seed) if seed is not None else int.from_bytes(os.urandom(4), "little"))
        stops = [x.decode() for x in (pb_utils.get_input_tensor_by_name(request, "stop_words").as_numpy().reshape(-1)
                                      if pb_utils.get_input_tensor_by_name(request, "stop_words") is not None else []) if x]
        text = TextStream(stops)
        out = self.model(input_ids=ids, pixel_values=images, use_cache=True)
        past, produced, finish, generated, sent_text, parts = out.past_key_values, 0, "length", [], "", []
        logits = out.logits[0, -1]
        while produced < max_tokens:
            if request.is_cancelled():
                pb_utils.Logger.log_info(f"llava_vision: request cancelled after {produced} tokens")
                sender.send(flags=_FINAL)
                return
            token = self._sample(logits, temperature, top_k, top_p, generator)
            if token in self.eos:
                finish = "stop"
                break
            produced += 1
            generated.append(token)
            decoded = self.tokenizer.decode(generated, skip_special_tokens=True)
            if decoded.endswith("\ufffd"):
                decoded = decoded[:-1]
            piece = text.push(decoded[len(sent_text):].encode("utf-8"))
            sent_text = decoded if len(decoded) > len(sent_text) else sent_text
            if stream_mode and piece:
                sender.send(self._response(piece))
            parts.append(piece)
            if text.stopped:
                finish = "stop"
                break
            out = self.model(input_ids=self.torch.tensor([[token]], device=self.device), past_key_values=past, use_cache=True)
            past, logits = out.past_key_values, out.logits[0, -1]
        tail = text.flush()
        body = tail if stream_mode else "".join(parts) + tail
        sender.send(self._response(body, ids.shape[1], produced, finish), flags=_FINAL)

    @staticmethod
    def _response(text, n_in=None, n_out=None, finish=None):
        tensors = [pb_utils.Tensor("text_output", np.array([[text.encode("utf-8")]], dtype=np.object_))]
        if n_in is not None:
            tensors += [pb_utils.Tensor("num_input_tokens", np.array([[n_in]], dtype=np.int32)),
                        pb_utils.Tensor("num_output_tokens", np.array([[n_out]], dtype=np.int32)),
                        pb_utils.Tensor("finish_reason", np.array([[finish.encode()]], dtype=np.object_))]
        return pb_utils.InferenceResponse(output_tensors=tensors)
