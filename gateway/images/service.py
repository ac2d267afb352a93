"""ImageService: image_url parts -> FP16 pixel values for a vision model, in prompt order."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import numpy.typing as npt
from PIL import ImageFile

from gateway.errors import InvalidRequestError
from gateway.images.budget import MemoryBudget, decode_threads
from gateway.images.datauri import check_data_uri, decode_data_uri
from gateway.images.decode import Plan, decode, open_image, plan
from gateway.images.fetch import ImageFetcher, Resolver
from gateway.images.preprocess import pixel_values
from gateway.images.ssrf import UrlPolicy
from gateway.metrics import Metrics
from gateway.registry import ImageProcessorConfig, ModelEntry
from gateway.settings import Settings


class ImageService:
    """Resolves data URIs and URLs, decodes safely and preprocesses off the event loop.

    Cheap checks (scheme, URL policy, data URI header and size) run first, in prompt order, so
    the first bad part is the one reported; then fetching and decoding run concurrently, and the
    first failure cancels the rest. Each decode first reads the image's header (in a thread),
    reserves its estimated bytes from a memory budget (``image_decode_memory_mb``: it waits while
    others hold them, and an image that needs more than the whole budget is refused), then decodes
    on a pool of one thread less than the container has CPUs (its cgroup quota, not the host's
    cores; at least one), so that the event loop keeps a CPU. The reservation is given back when
    the decoding thread is done, even if the request was cancelled before.
    """

    def __init__(self, settings: Settings, *, resolver: Resolver | None = None,
                 metrics: Metrics | None = None) -> None:
        self.metrics = metrics  # fetch and decode times
        self.max_bytes = settings.image_max_bytes
        self.max_pixels = settings.image_max_pixels
        self.max_frames = settings.image_max_frames
        self.policy = UrlPolicy(allow_http=settings.image_allow_http,
                                allowed_hosts=settings.image_allowed_hosts,
                                denied_hosts=settings.image_denied_hosts)
        self.fetcher = ImageFetcher(self.policy,
                                    connect_timeout_s=settings.image_connect_timeout_s,
                                    total_timeout_s=settings.image_fetch_timeout_s,
                                    max_bytes=settings.image_max_bytes,
                                    max_redirects=settings.image_max_redirects, resolver=resolver)
        self.budget = MemoryBudget(settings.image_decode_memory_mb << 20)
        self.threads = decode_threads(settings.image_decode_threads)
        self._pool = ThreadPoolExecutor(self.threads, thread_name_prefix="image-decode")

    async def aclose(self) -> None:
        """Close the fetcher's connections and let the decode threads go."""
        await self.fetcher.aclose()
        self._pool.shutdown(wait=False, cancel_futures=True)

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
        started = time.perf_counter()
        data: str | bytes = url if url[:5].lower() == "data:" else await self.fetcher.fetch(url, param)
        decoding = time.perf_counter()
        if self.metrics is not None and isinstance(data, bytes):
            self.metrics.image_fetch.observe(decoding - started)
        loop = asyncio.get_running_loop()
        image, how = await loop.run_in_executor(self._pool, self._open, data, param, cfg)
        await self.budget.acquire(how.cost, param)
        try:
            job = self._pool.submit(lambda: pixel_values(decode(image, how, param), cfg))
        except BaseException:
            self.budget.release(how.cost)
            raise
        job.add_done_callback(lambda _: loop.call_soon_threadsafe(self.budget.release, how.cost))
        pixels = await asyncio.wrap_future(job)
        if self.metrics is not None:  # open, budget wait and decode: what an image costs here
            self.metrics.image_decode.observe(time.perf_counter() - decoding)
        return pixels

    def _open(self, data: str | bytes, param: str,
              cfg: ImageProcessorConfig) -> tuple[ImageFile.ImageFile, Plan]:
        if isinstance(data, str):
            data = decode_data_uri(data, self.max_bytes, param)
        image = open_image(data, self.max_pixels, param, self.max_frames)
        return image, plan(image, cfg)
