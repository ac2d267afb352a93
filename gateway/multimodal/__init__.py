"""Image input for vision models: SSRF-safe fetching, safe decoding, preprocessing."""

from gateway.multimodal.service import ImageService

__all__ = ["ImageService"]
