"""Decode one uploaded image, within limits, before it reaches the model."""

from __future__ import annotations

import io
import sys
import warnings
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from overseer_serving.errors import BadRequest, PayloadTooLarge

if TYPE_CHECKING:
    from PIL.Image import Image


def decode_image(data: bytes, *, max_pixels: int) -> Image:
    from PIL import Image as PILImage
    from PIL import UnidentifiedImageError

    if not data:
        raise BadRequest("image is empty", reason="bad_image")
    try:
        with warnings.catch_warnings():
            # PIL warns (and past 2x raises) on decompression bombs; our own limit below is stricter.
            warnings.simplefilter("ignore", PILImage.DecompressionBombWarning)
            img: Image = _pil_open()(io.BytesIO(data))  # reads the header only
            width, height = img.size
            if width * height > max_pixels:
                raise PayloadTooLarge(
                    f"image is {width}x{height} pixels; the limit is {max_pixels} pixels", reason="image_too_large"
                )
            img.load()
    except (UnidentifiedImageError, PILImage.DecompressionBombError, OSError, ValueError, SyntaxError) as error:
        if isinstance(error, PILImage.DecompressionBombError):
            raise PayloadTooLarge(f"image too large: {error}", reason="image_too_large") from None
        raise BadRequest(f"not a decodable image: {error}", reason="bad_image") from None
    return img.convert("RGB") if img.mode != "RGB" else img


def _pil_open() -> Callable[..., Any]:
    """PIL's own Image.open, even if Ultralytics has patched it to pip-install a HEIF plugin."""
    from PIL import Image as PILImage

    original = getattr(sys.modules.get("ultralytics.utils.patches"), "_image_open", None)
    return original if callable(original) else PILImage.open
