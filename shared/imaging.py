"""Safe image decoding: every bad image becomes a 4xx with a message a person can act on."""

from __future__ import annotations

import base64
import binascii
import io
import logging
import math
import warnings

import pillow_heif
from PIL import Image, ImageOps, UnidentifiedImageError

from shared.http.errors import BadInput, PayloadTooLarge, UnsupportedMedia

# Pillow 13 reads AVIF itself; HEIC/HEIF (iPhone photos) needs the pillow-heif plugin, registered here,
# once, for every process that decodes images (the services, the gateway, thumbnails).
pillow_heif.register_heif_opener()
log = logging.getLogger(__name__)

ALLOWED_FORMATS = frozenset({"JPEG", "PNG", "WEBP", "BMP", "GIF", "TIFF", "HEIF", "AVIF"})
SUPPORTED_NAMES = "JPEG, PNG, WEBP, BMP, GIF, TIFF, HEIC/HEIF or AVIF"


def decode_base64(data: str, *, what: str = "image") -> bytes:
    if "," in data[:100] and data.startswith("data:"):
        data = data.split(",", 1)[1]  # accept data: URLs as browsers produce them
    try:
        raw = base64.b64decode(data, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise BadInput(f"{what} is not valid base64: {exc}") from exc
    if not raw:
        raise BadInput(f"{what} is empty")
    return raw


def decode_image(raw: bytes, *, max_pixels: int, name: str = "image") -> Image.Image:
    """Bytes → RGB PIL image, refusing non-images, truncated files and decompression bombs."""
    image = check_image(raw, max_pixels=max_pixels, name=name)
    try:
        image.load()
    except (OSError, SyntaxError, ValueError, EOFError) as exc:
        raise BadInput(f"{name} is damaged or truncated ({exc}); send the complete file") from exc
    return upright(image).convert("RGB")


def check_image(raw: bytes, *, max_pixels: int, name: str = "image") -> Image.Image:
    """The image opened from its header only (format and size checked, pixels not decoded): what the
    gateway checks before a model service decodes it in full (a damaged body is then the service's 400)."""
    if not raw:
        raise BadInput(f"{name} is empty (0 bytes)")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(raw))
    except UnidentifiedImageError as exc:
        raise UnsupportedMedia(
            f"{name} is not an image we can read; send {SUPPORTED_NAMES}"
        ) from exc
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise PayloadTooLarge(f"{name} is too large to decode safely: {exc}") from exc
    except (OSError, SyntaxError, ValueError, EOFError) as exc:  # a damaged header, found by fuzzing
        raise BadInput(f"{name} is damaged or truncated ({exc}); send the complete file") from exc
    if image.format not in ALLOWED_FORMATS:
        raise UnsupportedMedia(f"{name} is {image.format}; send {SUPPORTED_NAMES}")
    width, height = image.size
    if width * height > max_pixels:
        raise PayloadTooLarge(
            f"{name} is {width}x{height} = {width * height:,} pixels, above the limit of {max_pixels:,}; "
            "downscale it first"
        )
    return image


def upright(image: Image.Image) -> Image.Image:
    """The image as a person sees it: a phone photo stored sideways with an EXIF orientation tag is
    turned, so models and thumbnails never get it on its side."""
    try:
        return ImageOps.exif_transpose(image)
    except (OSError, SyntaxError, ValueError, TypeError, KeyError) as exc:
        # a damaged EXIF block costs the orientation, not the photo
        log.warning("EXIF orientation of a %s image unreadable, used as stored: %s", image.format, exc)
        return image


def decode_image_base64(data: str, *, max_pixels: int, name: str = "image") -> Image.Image:
    return decode_image(decode_base64(data, what=name), max_pixels=max_pixels, name=name)


def encode_image_base64(image: Image.Image, fmt: str = "PNG") -> str:
    """The inverse, for clients and tests."""
    buffer = io.BytesIO()
    image.save(buffer, format=fmt)
    return base64.b64encode(buffer.getvalue()).decode("ascii")


def crop_box(image: Image.Image, box: tuple[float, float, float, float], margin: float = 0.0) -> Image.Image:
    """The box (x0, y0, x1, y1 in pixels) widened by `margin` of its size on each side, cut to the image:
    an object's crop with some context (the cascade's detection stage, the worker's object embeddings)."""
    x0, y0, x1, y1 = box
    dx, dy = margin * (x1 - x0), margin * (y1 - y0)
    left, top = max(0, math.floor(x0 - dx)), max(0, math.floor(y0 - dy))
    right, bottom = min(image.width, math.ceil(x1 + dx)), min(image.height, math.ceil(y1 + dy))
    return image.crop((left, top, right, bottom))
