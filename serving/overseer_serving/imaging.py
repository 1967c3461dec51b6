"""Decode one uploaded image, within limits, before it reaches the model.

`open_image` reads the header only; `finish_image` checks the pixel limit, decodes and converts
to RGB. `decode_image` is both, for /detect; /detect/batch runs them per image (service.py), so
that a bad image is an error of its own item only.
"""

from __future__ import annotations

import contextlib
import io
import sys
import warnings
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

from overseer_serving.errors import BadRequest, PayloadTooLarge

if TYPE_CHECKING:
    from PIL.Image import Image


def decode_image(data: bytes, *, max_pixels: int) -> Image:
    return finish_image(open_image(data), max_pixels=max_pixels)


def open_image(data: bytes) -> Image:
    """Identify the image from its header (nothing is decoded yet)."""
    if not data:
        raise BadRequest("image is empty", reason="bad_image")
    with _decode_errors():
        img: Image = _pil_open()(io.BytesIO(data))
    return img


def finish_image(img: Image, *, max_pixels: int) -> Image:
    """Refuse more than `max_pixels` (from the header), decode everything, convert to RGB."""
    width, height = img.size
    if width * height > max_pixels:
        raise PayloadTooLarge(
            f"image is {width}x{height} pixels; the limit is {max_pixels} pixels", reason="image_too_large"
        )
    with _decode_errors():
        img.load()
        return img.convert("RGB") if img.mode != "RGB" else img


@contextlib.contextmanager
def _decode_errors() -> Iterator[None]:
    """PIL's decoding errors as our 400 bad_image / 413 image_too_large."""
    from PIL import Image as PILImage
    from PIL import UnidentifiedImageError

    try:
        with warnings.catch_warnings():
            # PIL warns (and past 2x raises) on decompression bombs; our own limit is stricter.
            warnings.simplefilter("ignore", PILImage.DecompressionBombWarning)
            yield
    except PILImage.DecompressionBombError as error:
        raise PayloadTooLarge(f"image too large: {error}", reason="image_too_large") from None
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError) as error:
        raise BadRequest(f"not a decodable image: {error}", reason="bad_image") from None


def _pil_open() -> Callable[..., Any]:
    """PIL's own Image.open, even if Ultralytics has patched it to pip-install a HEIF plugin."""
    from PIL import Image as PILImage

    original = getattr(sys.modules.get("ultralytics.utils.patches"), "_image_open", None)
    return original if callable(original) else PILImage.open
