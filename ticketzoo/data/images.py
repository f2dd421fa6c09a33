"""Reading one image file: validation, mode conversion, working-size resize.

Every image ticketzoo feeds a model goes through :func:`try_decode`, so the folder
validator, the decoded-image cache and the streaming dataset agree pixel for pixel.

Mode conversion (:func:`to_channels`) turns any common PIL mode into ``RGB`` (or ``L``
when ``channels == 1``):

* ``1``, ``L``, ``P``, ``CMYK``, ``YCbCr``, ``RGB``: PIL's own ``convert``.
* ``RGBA``, ``LA``, ``PA``, ``RGBa``, ``La`` and ``P`` with a transparent colour: alpha is
  composited onto **black** (transparent pixels become 0), so whatever colour hides under
  fully transparent pixels never reaches the model.
* ``I;16*`` (16-bit): scaled linearly, ``0..65535 -> 0..255`` (rounded, never clipped).
* ``I`` (32-bit int): treated as 16-bit when all values lie in ``0..65535`` (how 16-bit PNG
  and TIFF files usually load); otherwise min-max scaled per image.
* ``F`` (float): ``0..1 -> 0..255`` when all values lie in ``[0, 1]``, kept when they lie in
  ``[0, 255]``, otherwise min-max scaled per image.

EXIF orientation is applied, and multi-frame files (GIF, TIFF) use their first frame.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import numpy as np
from PIL import ExifTags, Image, ImageOps, UnidentifiedImageError

T = TypeVar("T")

_SIXTEEN_BIT = ("I;16", "I;16L", "I;16B", "I;16N")


@dataclass(frozen=True, eq=False)
class DecodedImages:
    """Working-size images decoded while validating a folder, keyed by file path.

    ``arrays[path]`` is uint8 ``[resize, resize, channels]``. The cache reuses them
    instead of decoding every file a second time.
    """

    channels: int
    resize: int
    arrays: Mapping[str, np.ndarray]


def to_channels(img: Image.Image, channels: int) -> Image.Image:
    """Return ``img`` as mode ``RGB`` (``channels == 3``) or ``L`` (``channels == 1``)."""
    mode = img.mode
    if mode in _SIXTEEN_BIT or mode in ("I", "F"):
        img = Image.fromarray(_scale_to_uint8(np.asarray(img), mode), mode="L")
    elif mode == "P" and "transparency" in img.info or mode == "PA":
        img = img.convert("RGBA")
    elif mode in ("RGBa", "La"):  # premultiplied alpha: un-premultiply first
        img = img.convert(mode[0] + "A" if mode == "La" else "RGBA")
    if img.mode in ("RGBA", "LA"):
        img = _on_black(img)
    target = "L" if channels == 1 else "RGB"
    return img if img.mode == target else img.convert(target)


def _on_black(img: Image.Image) -> Image.Image:
    base = Image.new(img.mode[:-1], img.size, 0)
    base.paste(img.convert(base.mode), mask=img.getchannel("A"))
    return base


def _scale_to_uint8(a: np.ndarray, mode: str) -> np.ndarray:
    if mode in _SIXTEEN_BIT:
        return ((a.astype(np.uint32) * 255 + 32767) // 65535).astype(np.uint8)
    lo, hi = (float(a.min()), float(a.max())) if a.size else (0.0, 0.0)
    if mode == "I" and lo >= 0 and hi <= 65535:
        return ((a.astype(np.int64) * 255 + 32767) // 65535).astype(np.uint8)
    if mode == "F" and lo >= 0 and hi <= 1:
        lo, hi = 0.0, 1.0
    elif mode == "F" and lo >= 0 and hi <= 255:
        lo, hi = 0.0, 255.0
    if hi <= lo:
        return np.zeros(a.shape, np.uint8)
    scaled = (a.astype(np.float64) - lo) * (255.0 / (hi - lo))
    return np.rint(scaled).astype(np.uint8)


def to_working_size(img: Image.Image, resize: int) -> Image.Image:
    """Resize the shorter side to ``resize``, then center-crop a ``resize`` square.

    Done as one resample of the central square (``box=``), which equals resize-then-crop
    up to rounding and skips resampling the pixels the crop would discard.
    """
    w, h = img.size
    side = min(w, h)
    left, top = (w - side) / 2, (h - side) / 2
    box = (left, top, left + side, top + side)
    return img.resize((resize, resize), Image.Resampling.BILINEAR, box=box)


def working_image(img: Image.Image, *, channels: int, resize: int | None) -> Image.Image:
    """An opened image as every reader of image files prepares it: loaded (a JPEG decoded at a
    reduced scale when that still covers ``resize``, at its smallest without ``resize``, for
    validation; ``draft`` does nothing once loaded), turned by its EXIF orientation, converted
    to ``channels`` and, with ``resize``, at working size."""
    # draft() only affects JPEG; it keeps both sides >= the requested size.
    img.draft("L" if channels == 1 else None, (resize, resize) if resize else (1, 1))
    img.load()
    if img.getexif().get(ExifTags.Base.Orientation, 1) != 1:
        img = ImageOps.exif_transpose(img)
    img = to_channels(img, channels)
    return to_working_size(img, resize) if resize else img


#: Pixels above which an image that cannot be decoded at a reduced scale (anything but JPEG,
#: see ``draft``) is skipped: a 164 KB PNG of 13,000 x 13,000 pixels decoded to 1.2-2.1 GB.
MAX_PIXELS = 64_000_000


def _too_large(img: Image.Image) -> str | None:
    w, h = img.size
    if w * h <= MAX_PIXELS or img.format == "JPEG" and w * h <= 64 * MAX_PIXELS:
        return None  # a JPEG decodes at 1/8 scale per side when that still covers the working size
    return (f"image too large: {w} x {h} pixels (over {MAX_PIXELS // 1_000_000} million, decoded whole); "
            "resize it first")


def read_checked(path: str | Path, use: Callable[[Image.Image], T]) -> tuple[T | None, str | None]:
    """``(use(image), None)`` for a readable image file, or ``(None, reason)``: the one rule
    for an unusable file (empty, not an image, a decompression bomb, corrupt or truncated)
    that ``finetune``, ``find`` and ``predict`` share.

    The file is opened twice: once for ``verify()`` (PNG checksums, structure), then again
    for ``use``, which must ``load()`` the image (catching truncated data);
    ``LOAD_TRUNCATED_IMAGES`` stays off. Only MemoryError propagates."""
    try:
        if os.path.getsize(path) == 0:
            return None, "empty file (0 bytes)"
        with warnings.catch_warnings():  # the size is checked below, with the file named
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(path) as img:
                if too_large := _too_large(img):
                    return None, too_large
                img.verify()
            with Image.open(path) as img:
                return use(img), None
    except UnidentifiedImageError:
        return None, "not an image file PIL can read"
    except Image.DecompressionBombError as err:
        return None, f"image too large: {err}"
    except MemoryError:
        raise
    except Exception as err:  # noqa: BLE001 - PIL raises many types on malformed files
        return None, f"corrupt or truncated image: {str(err)[:120]}"


def try_decode(
    path: str | Path, *, channels: int, resize: int | None
) -> tuple[np.ndarray | None, str | None]:
    """Validate and decode one file (:func:`read_checked`): ``(uint8 [H, W, C] array, None)``
    or ``(None, reason)``. With ``resize`` the result is at working size; without, only
    validation is wanted, so JPEGs are decoded at 1/8 scale (``draft``), which still reads
    every byte."""

    def decode(img: Image.Image) -> np.ndarray:
        # A writable copy: torch.from_numpy warns on read-only.
        return np.array(working_image(img, channels=channels, resize=resize))

    array, reason = read_checked(path, decode)
    if array is None:
        return None, reason
    if array.ndim == 2:
        array = array[:, :, None]
    return array, None
