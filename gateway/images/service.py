"""ImageService: image_url parts -> FP16 pixel values for a vision model, in prompt order."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

from gateway.errors import InvalidRequestError
from gateway.images.datauri import check_data_uri, decode_data_uri
from gateway.images.decode import decode_image
from gateway.images.fetch import ImageFetcher, Resolver
from gateway.images.preprocess import pixel_values
from gateway.images.ssrf import UrlPolicy
from gateway.registry import ImageProcessorConfig, ModelEntry
from gateway.settings import Settings


class ImageService:
    """Resolves data URIs and URLs, decodes safely and preprocesses off the event loop.

    Cheap checks (scheme, URL policy, data URI header and size) run first, in prompt order, so
    the first bad part is the one reported; then fetching and decoding run concurrently, and the
    first failure cancels the rest. Decoding is bounded to a few threads, which also bounds the
    memory that decoded images take.
    """

    def __init__(self, settings: Settings, *, resolver: Resolver | None = None) -> None:
        self.max_bytes = settings.image_max_bytes
        self.max_pixels = settings.image_max_pixels
        self.policy = UrlPolicy(allow_http=settings.image_allow_http,
                                allowed_hosts=settings.image_allowed_hosts,
                                denied_hosts=settings.image_denied_hosts)
        self.fetcher = ImageFetcher(self.policy,
                                    connect_timeout_s=settings.image_connect_timeout_s,
                                    total_timeout_s=settings.image_fetch_timeout_s,
                                    max_bytes=settings.image_max_bytes,
                                    max_redirects=settings.image_max_redirects, resolver=resolver)
        self.decode_slots = asyncio.Semaphore(max(2, os.cpu_count() or 2))

    async def aclose(self) -> None:
        """Close the fetcher's connections."""
        await self.fetcher.aclose()

    async def resolve(self, refs: Sequence[tuple[str, str]],
                      entry: ModelEntry) -> npt.NDArray[np.float16]:
        """FP16 ``[n, 3, H, W]`` pixel values for the images at ``refs``.

        Args:
            refs: ``(url, param)`` pairs in prompt order; ``param`` names the request field.
            entry: the vision model the pixel values are for.

        Returns:
            One row per image, in the order of ``refs``.

        Raises:
            InvalidRequestError: the model takes no images or fewer; or any image that cannot be
                used, with ``param`` pointing at it and a code naming why.
        """
        cfg = entry.image_processor
        if not entry.vision or cfg is None:
            raise InvalidRequestError(f"Model '{entry.id}' does not accept image input",
                                      param="model", code="invalid_model_type")
        if len(refs) > entry.max_images:
            raise InvalidRequestError(f"Too many images: {len(refs)}; model '{entry.id}' takes "
                                      f"at most {entry.max_images}", param="messages",
                                      code="too_many_images")
        for url, param in refs:
            if url[:5].lower() == "data:":
                check_data_uri(url, self.max_bytes, param)
            else:
                self.policy.check_url(url, param)
        tasks = [asyncio.create_task(self._one(url, param, cfg)) for url, param in refs]
        try:
            arrays = await asyncio.gather(*tasks)
        except BaseException:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)  # retrieve, don't leak
            raise
        return np.stack(arrays).astype(np.float16)

    async def _one(self, url: str, param: str, cfg: ImageProcessorConfig) -> npt.NDArray[np.float32]:
        data: str | bytes = url if url[:5].lower() == "data:" else await self.fetcher.fetch(url, param)
        async with self.decode_slots:
            return await asyncio.to_thread(self._pixels, data, param, cfg)

    def _pixels(self, data: str | bytes, param: str, cfg: ImageProcessorConfig) -> npt.NDArray[np.float32]:
        if isinstance(data, str):
            data = decode_data_uri(data, self.max_bytes, param)
        return pixel_values(decode_image(data, self.max_pixels, param), cfg)
