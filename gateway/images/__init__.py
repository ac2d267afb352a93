"""Image input for vision models: SSRF-safe fetching, safe decoding, preprocessing."""

from gateway.images.service import ImageService

__all__ = ["ImageService"]
