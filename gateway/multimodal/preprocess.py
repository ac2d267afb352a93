"""Pixel values as a Hugging Face CLIP/SigLIP image processor makes them, with Pillow and numpy only."""

from __future__ import annotations

import numpy as np
from PIL import Image

from gateway.registry import ImageProcessorConfig


def _resize(image: Image.Image, cfg: ImageProcessorConfig) -> Image.Image:
    if cfg.resize_mode == "fixed":
        return image.resize((cfg.width, cfg.height), resample=Image.Resampling(cfg.resample))
    width, height = image.size
    short, long = (width, height) if width <= height else (height, width)
    new_short, new_long = cfg.shortest_edge, int(cfg.shortest_edge * long / short)
    size = (new_short, new_long) if width <= height else (new_long, new_short)
    return image.resize(size, resample=Image.Resampling(cfg.resample))


def _center_crop(array: np.ndarray, height: int, width: int) -> np.ndarray:
    h, w = array.shape[:2]
    if h < height or w < width:  # pad like HF does when the image is smaller than the crop
        padded = np.zeros((max(h, height), max(w, width), array.shape[2]), dtype=array.dtype)
        top, left = (padded.shape[0] - h) // 2, (padded.shape[1] - w) // 2
        padded[top:top + h, left:left + w] = array
        array, h, w = padded, padded.shape[0], padded.shape[1]
    top, left = (h - height) // 2, (w - width) // 2
    return array[top:top + height, left:left + width]


def pixel_values(image: Image.Image, cfg: ImageProcessorConfig) -> np.ndarray:
    """FP32 [3, H, W]: resize, centre crop, rescale, normalise (the processor's order)."""
    array = np.asarray(_resize(image, cfg), dtype=np.float32)
    if cfg.do_center_crop:
        array = _center_crop(array, cfg.crop_height, cfg.crop_width)
    array = array * np.float32(cfg.rescale_factor)
    array = (array - np.asarray(cfg.image_mean, dtype=np.float32)) / np.asarray(cfg.image_std,
                                                                              dtype=np.float32)
    return array.transpose(2, 0, 1)
