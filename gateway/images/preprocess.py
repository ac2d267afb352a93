"""Pixel values as a Hugging Face CLIP/SigLIP image processor makes them, with Pillow and numpy only.

The order is the processor's: resize (Pillow, on 8-bit RGB), centre crop (zero padding where the
image is smaller than the crop), rescale, normalise; the result equals the processor's for the
same Pillow. One exception, for safety: when the resized image would be much larger than the crop
(a 4000x10 strip would become 134400x336), only the pixels that survive the crop are resampled,
with Pillow's ``box``. That bounds time and memory; Pillow may then order its two passes
differently, so such images can differ by a few levels of 255.

Images that ``decode`` reduced by an integer factor (only those at least ``REDUCING_GAP`` times
larger than the resize target, in practice big photos) are resampled from the reduced image over
the source's box, as Pillow's ``resize(reducing_gap=...)`` does: the mean difference from
resampling the full image is a fraction of a level of 255 on photos (tested).
"""

from __future__ import annotations

import math

import numpy as np
import numpy.typing as npt
from PIL import Image

from gateway.images.decode import Decoded
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


def pixel_values(image: Image.Image | Decoded, cfg: ImageProcessorConfig) -> npt.NDArray[np.float32]:
    """FP32 ``[3, H, W]`` for one RGB image.

    Args:
        image: an RGB image, or a ``Decoded`` one, which may have been reduced while decoding:
            then the output size follows from the source's size, and the resize reads the
            source's box within the reduced image (what Pillow's ``reducing_gap`` does).
        cfg: the model's image processor settings.

    Returns:
        Normalised pixel values, channels first.
    """
    if isinstance(image, Decoded):
        (width, height), (x0, y0, x1, y1), image = image.size, image.box, image.image
    else:
        (width, height), (x0, y0, x1, y1) = image.size, (0.0, 0.0, *map(float, image.size))
    new_w, new_h = resized_size(width, height, cfg)
    sx, sy = (x1 - x0) / new_w, (y1 - y0) / new_h
    resample = Image.Resampling(cfg.resample)
    if not cfg.do_center_crop:
        resized = image.resize((new_w, new_h), resample=resample, box=(x0, y0, x1, y1))
        array = np.asarray(resized, dtype=np.float32)
    else:
        (left, out_w), (top, out_h) = _window(new_w, cfg.crop_width), _window(new_h, cfg.crop_height)
        if new_w * new_h > _MAX_RESIZED * cfg.crop_width * cfg.crop_height:
            box = (x0 + left * sx, y0 + top * sy, x0 + (left + out_w) * sx, y0 + (top + out_h) * sy)
            cropped = np.asarray(image.resize((out_w, out_h), resample=resample, box=box))
        else:
            resized = image.resize((new_w, new_h), resample=resample, box=(x0, y0, x1, y1))
            cropped = np.asarray(resized)[top:top + out_h, left:left + out_w]
        array = _pad(cropped.astype(np.float32), cfg.crop_height, cfg.crop_width)
    array = array * np.float32(cfg.rescale_factor)
    mean = np.asarray(cfg.image_mean, dtype=np.float32)
    std = np.asarray(cfg.image_std, dtype=np.float32)
    return ((array - mean) / std).transpose(2, 0, 1)
