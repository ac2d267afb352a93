"""ImageService: image_url parts -> FP16 pixel values for a vision model, in prompt order."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import numpy as np

from gateway.errors import InvalidRequestError
from gateway.multimodal.datauri import decode_data_uri
from gateway.multimodal.decode import decode_image
from gateway.multimodal.fetch import ImageFetcher
from gateway.multimodal.preprocess import pixel_values
from gateway.multimodal.ssrf import UrlPolicy
from gateway.registry import ImageProcessorConfig, ModelEntry
from gateway.settings import Settings


class ImageService:
    """Resolves data URIs and URLs, decodes safely, preprocesses off the event loop."""

    def __init__(self, settings: Settings) -> None:
        self.max_bytes = settings.image_max_bytes
        self.max_pixels = settings.image_max_pixels
        policy = UrlPolicy(allow_http=settings.image_allow_http,
                           allowed_hosts=settings.image_allowed_hosts,
                           denied_hosts=settings.image_denied_hosts)
        self.fetcher = ImageFetcher(policy, connect_timeout_s=settings.image_connect_timeout_s,
                                    total_timeout_s=settings.image_fetch_timeout_s,
                                    max_bytes=settings.image_max_bytes,
                                    max_redirects=settings.image_max_redirects)

    async def aclose(self) -> None:
        await self.fetcher.aclose()

    async def _one(self, url: str, param: str, cfg: ImageProcessorConfig) -> np.ndarray:
        if url.startswith("data:"):
            data = decode_data_uri(url, self.max_bytes, param)
        else:
            data = await self.fetcher.fetch(url, param)
        return await asyncio.to_thread(self._pixels, data, param, cfg)

    def _pixels(self, data: bytes, param: str, cfg: ImageProcessorConfig) -> np.ndarray:
        return pixel_values(decode_image(data, self.max_pixels, param), cfg)

    async def resolve(self, refs: Sequence[tuple[str, str]], entry: ModelEntry) -> np.ndarray:
        """FP16 [n, 3, H, W] for the images at ``refs`` ((url, param) pairs).

        Raises:
            InvalidRequestError: any image that cannot be used, with ``param`` pointing at it.
        """
        if entry.image_processor is None:
            raise InvalidRequestError(f"Model '{entry.id}' has no image processor settings",
                                      param="model", code="invalid_model_type")
        arrays = await asyncio.gather(*(self._one(u, p, entry.image_processor) for u, p in refs))
        return np.stack(arrays).astype(np.float16)
