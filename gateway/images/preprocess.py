"""Pixel values as a Hugging Face CLIP/SigLIP image processor makes them, with Pillow and numpy only.

The order is the processor's: resize (Pillow, on 8-bit RGB), centre crop (zero padding where the
image is smaller than the crop), rescale, normalise; the result equals the processor's for the
same Pillow. One exception, for safety: when the resized image would be much larger than the crop
(a 4000x10 strip would become 134400x336), only the pixels that survive the crop are resampled,
with Pillow's ``box``. That bounds time and memory; Pillow may then order its two passes
differently, so such images can differ by a few levels of 255.
"""

from __future__ import annotations

import math

import numpy as np
import numpy.typing as npt
from PIL import Image

from gateway.registry import ImageProcessorConfig

_MAX_RESIZED = 16  # resized pixels per crop pixel before resampling only the crop


def resized_size(width: int, height: int, cfg: ImageProcessorConfig) -> tuple[int, int]:
    """(width, height) after the processor's resize step."""
    if cfg.resize_mode == "fixed":
        return cfg.width, cfg.height
    if width <= height:
        return cfg.shortest_edge, int(cfg.shortest_edge * height / width)
    return int(cfg.shortest_edge * width / height), cfg.shortest_edge


def _window(size: int, crop: int) -> tuple[int, int]:
    """(start, length) of the centre crop along one axis, within the resized image."""
    return ((size - crop) // 2, crop) if size >= crop else (0, size)


def _pad(array: npt.NDArray[np.float32], height: int, width: int) -> npt.NDArray[np.float32]:
    """Zero-pad to height x width, centred the way ``transformers``' center_crop pads."""
    h, w = array.shape[:2]
    if (h, w) == (height, width):
        return array
    out = np.zeros((height, width, array.shape[2]), dtype=array.dtype)
    top, left = math.ceil((height - h) / 2), math.ceil((width - w) / 2)
    out[top:top + h, left:left + w] = array
    return out


def pixel_values(image: Image.Image, cfg: ImageProcessorConfig) -> npt.NDArray[np.float32]:
    """FP32 ``[3, H, W]`` for one RGB image.

    Args:
        image: an RGB image (see ``decode.decode_image``).
        cfg: the model's image processor settings.

    Returns:
        Normalised pixel values, channels first.
    """
    width, height = image.size
    new_w, new_h = resized_size(width, height, cfg)
    resample = Image.Resampling(cfg.resample)
    if not cfg.do_center_crop:
        array = np.asarray(image.resize((new_w, new_h), resample=resample), dtype=np.float32)
    else:
        (left, out_w), (top, out_h) = _window(new_w, cfg.crop_width), _window(new_h, cfg.crop_height)
        if new_w * new_h > _MAX_RESIZED * cfg.crop_width * cfg.crop_height:
            sx, sy = width / new_w, height / new_h
            box = (left * sx, top * sy, (left + out_w) * sx, (top + out_h) * sy)
            cropped = np.asarray(image.resize((out_w, out_h), resample=resample, box=box))
        else:
            resized = np.asarray(image.resize((new_w, new_h), resample=resample))
            cropped = resized[top:top + out_h, left:left + out_w]
        array = _pad(cropped.astype(np.float32), cfg.crop_height, cfg.crop_width)
    array = array * np.float32(cfg.rescale_factor)
    mean = np.asarray(cfg.image_mean, dtype=np.float32)
    std = np.asarray(cfg.image_std, dtype=np.float32)
    return ((array - mean) / std).transpose(2, 0, 1)
