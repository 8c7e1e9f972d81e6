"""Safe decoding of untrusted image bytes into RGB arrays.

An attachment is whatever its sender uploaded: a file named ``.png`` that is HTML, a PNG whose
header claims 20000x20000 pixels in a few hundred bytes (a decompression bomb: 1.2 GB once
decoded), a file cut short. ``decode_image`` decodes only what passes every check, in this
order, and raises ``ImageRejected`` with a short ``reason`` code for the rest:

1. ``too_large``: more than ``max_bytes``, before anything else is looked at;
2. ``not_an_image`` / ``unsupported_format``: the magic bytes decide the format, never a file
   name or a declared type, and only JPEG, PNG, GIF, WebP and BMP are accepted (Pillow is also
   told to try only that one format's decoder: no other parser ever sees the bytes);
3. ``type_mismatch``: a declared content type, when there is one, must be an image type of that
   same format (``application/octet-stream`` declares nothing);
4. ``decompression_bomb``: the header's width x height against ``max_pixels`` before a single
   pixel is decoded. This check is our own, so it holds whatever Pillow's process-wide
   ``Image.MAX_IMAGE_PIXELS`` says (another library may have set it to None); Pillow's own
   ``DecompressionBombError`` is mapped to the same reason. Nothing here changes Pillow's
   global settings;
5. ``truncated`` / ``corrupt``: a file cut short or damaged fails to decode. Pillow's
   ``ImageFile.LOAD_TRUNCATED_IMAGES`` stays off here; should other code in the process turn it
   on, a structural check (PNG's IEND, JPEG's EOI, the RIFF and BMP size fields) still refuses
   files that end early.

What passes: the first frame of an animation, turned upright by its EXIF orientation, converted
to RGB (palette, greyscale and CMYK converted; transparency composited on white, where a chat
client shows it on a light theme; 16-bit greyscale scaled to 8 bits).
"""

from __future__ import annotations

import hashlib
import io
import struct
from dataclasses import dataclass
from typing import Final, Literal

import numpy as np
from PIL import Image, ImageFile, UnidentifiedImageError

from core.errors import ImageRejected

ImageFormat = Literal["jpeg", "png", "gif", "webp", "bmp"]
RejectReason = Literal[
    "too_large",
    "not_an_image",
    "unsupported_format",
    "type_mismatch",
    "decompression_bomb",
    "truncated",
    "corrupt",
]

# Our format names -> Pillow's plugin names.
PIL_FORMATS: Final[dict[str, str]] = {
    "jpeg": "JPEG",
    "png": "PNG",
    "gif": "GIF",
    "webp": "WEBP",
    "bmp": "BMP",
}

# The content types each format may be declared as (lower case, parameters stripped).
CONTENT_TYPES: Final[dict[str, frozenset[str]]] = {
    "jpeg": frozenset({"image/jpeg", "image/jpg", "image/pjpeg"}),
    "png": frozenset({"image/png", "image/x-png", "image/apng"}),
    "gif": frozenset({"image/gif"}),
    "webp": frozenset({"image/webp"}),
    "bmp": frozenset({"image/bmp", "image/x-bmp", "image/x-ms-bmp"}),
}

# A declared type that says nothing about the content.
UNDECLARED_TYPES: Final = frozenset({"", "application/octet-stream", "binary/octet-stream"})

EXIF_ORIENTATION: Final = 0x0112
# EXIF orientation -> the transposition that makes the picture upright (as ImageOps does).
_TRANSPOSE: Final[dict[int, Image.Transpose]] = {
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_270,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_90,
}

# The sizes of the BMP info headers Pillow reads (BITMAPCOREHEADER ... BITMAPV5HEADER).
_BMP_HEADER_SIZES: Final = frozenset({12, 16, 40, 52, 56, 64, 108, 124})

# ISO-BMFF brands of still-image formats (HEIF, AVIF): known images we do not decode.
_HEIF_BRANDS: Final = frozenset(
    {b"heic", b"heix", b"hevc", b"hevx", b"heim", b"heis", b"mif1", b"msf1", b"avif", b"avis"}
)


@dataclass(frozen=True)
class DecodedImage:
    """One decoded image: what an image model reads, and where it came from."""

    pixels: np.ndarray  # (height, width, 3) uint8 RGB, read-only (shared by caches safely)
    format: str  # one of ImageFormat: what the magic bytes said
    width: int  # of ``pixels``, after the EXIF orientation was applied
    height: int
    sha256: str  # hex digest of the raw bytes (content_sha256): the image cache's key


def content_sha256(data: bytes) -> str:
    """The hex SHA-256 of an attachment's raw bytes: the same file has the same key, before
    any decoding (a cache looks up here first, and decodes only what it has not seen)."""
    return hashlib.sha256(data).hexdigest()


def sniff_format(data: bytes) -> ImageFormat | None:
    """The accepted image format the magic bytes announce, or None."""
    if data.startswith(b"\xff\xd8\xff"):
        return "jpeg"
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return "png"
    if data.startswith((b"GIF87a", b"GIF89a")):
        return "gif"
    if len(data) >= 12 and data.startswith(b"RIFF") and data[8:12] == b"WEBP":
        return "webp"
    # "BM" alone is two letters of text: the info header's size must be a known one too.
    if len(data) >= 18 and data.startswith(b"BM"):
        (header_size,) = struct.unpack_from("<I", data, 14)
        if header_size in _BMP_HEADER_SIZES:
            return "bmp"
    return None


def _known_unsupported(data: bytes) -> str | None:
    """The name of an image format we recognise but do not accept (for a clearer reason)."""
    if data.startswith((b"II*\x00", b"MM\x00*")):
        return "TIFF"
    if data.startswith(b"\x00\x00\x01\x00") and len(data) > 6:
        return "ICO"
    if data[4:8] == b"ftyp" and data[8:12] in _HEIF_BRANDS:
        return "HEIF/AVIF"
    if data.startswith((b"\xff\x0a", b"\x00\x00\x00\x0cJXL \r\n\x87\n")):
        return "JPEG XL"
    if data.startswith(b"\x00\x00\x00\x0cjP  \r\n\x87\n"):
        return "JPEG 2000"
    if data.startswith(b"8BPS"):
        return "PSD"
    return None


def media_type(content_type: str | None) -> str:
    """``Image/PNG; charset=x`` -> ``image/png``; None -> ``""``."""
    return (content_type or "").split(";", 1)[0].strip().lower()


def decode_image(
    data: bytes,
    *,
    max_bytes: int,
    max_pixels: int,
    declared_type: str | None = None,
) -> DecodedImage:
    """Decode untrusted image bytes into an upright RGB array, or raise ``ImageRejected``.

    ``declared_type`` is the content type the bytes came with (an HTTP response's, a
    platform's attachment metadata), if any. Runs in the calling thread: CPU-bound, so an
    asyncio caller runs it in an executor.
    """
    size = len(data)
    if size > max_bytes:
        raise ImageRejected("too_large", f"{size} bytes, over the limit of {max_bytes}")
    fmt = sniff_format(data)
    declared = media_type(declared_type)
    if fmt is None:
        known = _known_unsupported(data)
        if known is not None:
            raise ImageRejected(
                "unsupported_format", f"{known} is not accepted (JPEG, PNG, GIF, WebP, BMP are)"
            )
        if declared.startswith("image/") and not any(
            declared in types for types in CONTENT_TYPES.values()
        ):
            raise ImageRejected(
                "unsupported_format",
                f"declared {declared}, which is not accepted (JPEG, PNG, GIF, WebP, BMP are)",
            )
        what = "empty" if size == 0 else f"no image signature in the first bytes ({size} bytes)"
        raise ImageRejected("not_an_image", what)
    if declared not in UNDECLARED_TYPES and declared not in CONTENT_TYPES[fmt]:
        raise ImageRejected("type_mismatch", f"declared {declared}, but the bytes are {fmt}")

    claimed = _header_size(data, fmt)
    if claimed is not None and claimed[0] * claimed[1] > max_pixels:
        raise _bomb(*claimed, max_pixels)
    image = _open(data, fmt, max_pixels)
    try:
        _load(image, data, fmt)
        if image.width * image.height > max_pixels:
            # A decoder that changed the size while loading: checked again, never trusted.
            raise _bomb(image.width, image.height, max_pixels)
        pixels = _to_rgb(_upright(image))
    finally:
        image.close()
    pixels.flags.writeable = False
    height, width = pixels.shape[:2]
    return DecodedImage(
        pixels=pixels, format=fmt, width=width, height=height, sha256=content_sha256(data)
    )


def _bomb(width: int, height: int, max_pixels: int) -> ImageRejected:
    return ImageRejected(
        "decompression_bomb",
        f"{width}x{height} is {width * height} pixels, over the limit of {max_pixels}",
    )


_JPEG_SOF: Final = frozenset(
    {0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF}
)


def _header_size(data: bytes, fmt: ImageFormat) -> tuple[int, int] | None:
    """Width and height as the header states them, read by us before Pillow parses anything
    (so a bomb never even reaches Pillow's own check and its process-wide limit); None where
    the header is too short or unusual to say, and Pillow's reading is checked instead."""
    try:
        if fmt == "png" and data[12:16] == b"IHDR":
            width, height = struct.unpack_from(">II", data, 16)
        elif fmt == "gif":
            width, height = struct.unpack_from("<HH", data, 6)
        elif fmt == "bmp":
            if struct.unpack_from("<I", data, 14)[0] == 12:
                width, height = struct.unpack_from("<HH", data, 18)
            else:
                width, height = struct.unpack_from("<ii", data, 18)
        elif fmt == "webp":
            return _webp_size(data)
        elif fmt == "jpeg":
            return _jpeg_size(data)
        else:
            return None
    except struct.error:
        return None
    return abs(width), abs(height)  # a BMP stored top-down has a negative height


def _webp_size(data: bytes) -> tuple[int, int] | None:
    kind = data[12:16]
    if kind == b"VP8X":  # extended (animation, alpha): the canvas, 24-bit sizes minus one
        width = int.from_bytes(data[24:27], "little") + 1
        height = int.from_bytes(data[27:30], "little") + 1
        return width, height
    if kind == b"VP8 ":  # lossy: 14-bit sizes after the frame tag and start code
        width, height = struct.unpack_from("<HH", data, 26)
        return width & 0x3FFF, height & 0x3FFF
    if kind == b"VP8L":  # lossless: 14 bits each (minus one) after the signature byte
        bits = int.from_bytes(data[21:25], "little")
        return (bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1
    return None


def _jpeg_size(data: bytes) -> tuple[int, int] | None:
    """The first frame header's (SOFn) size, walking the marker segments up to the scan."""
    at = 2
    while at + 4 <= len(data):
        if data[at] != 0xFF:
            return None
        marker = data[at + 1]
        if marker == 0xFF:  # fill byte
            at += 1
            continue
        if marker in (0x01, *range(0xD0, 0xD8)):  # no length
            at += 2
            continue
        if marker in (0xD9, 0xDA):  # end of image, start of scan: no frame header found
            return None
        (length,) = struct.unpack_from(">H", data, at + 2)
        if marker in _JPEG_SOF:
            height, width = struct.unpack_from(">HH", data, at + 5)
            return width, height
        at += 2 + length
    return None


# Pillow's own size check (its process-wide MAX_IMAGE_PIXELS): an error past twice the limit,
# a warning past it, which a process run with warnings as errors (-W error) raises.
_PILLOW_BOMB: Final = (Image.DecompressionBombError, Image.DecompressionBombWarning)


def _open(data: bytes, fmt: ImageFormat, max_pixels: int) -> ImageFile.ImageFile:
    """Read the header only (Pillow decodes lazily) and check its size against max_pixels."""
    try:
        image = Image.open(io.BytesIO(data), formats=[PIL_FORMATS[fmt]])
    except _PILLOW_BOMB as exc:
        raise ImageRejected("decompression_bomb", f"{fmt} header: {exc}") from exc
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError, EOFError) as exc:
        raise _broken(fmt, data, exc) from exc
    width, height = image.size
    if width <= 0 or height <= 0:
        image.close()
        raise ImageRejected("corrupt", f"{fmt} header: {width}x{height} pixels")
    if width * height > max_pixels:
        image.close()
        raise _bomb(width, height, max_pixels)
    return image


def _load(image: ImageFile.ImageFile, data: bytes, fmt: ImageFormat) -> None:
    """Decode the first frame's pixels; a file that ends early is refused."""
    if ImageFile.LOAD_TRUNCATED_IMAGES and _ends_early(fmt, data):
        # Pillow was told process-wide to fill in missing data: refuse on our own evidence.
        raise ImageRejected("truncated", f"{fmt} file ends before its end marker")
    try:
        image.load()
    except _PILLOW_BOMB as exc:
        raise ImageRejected("decompression_bomb", f"{fmt}: {exc}") from exc
    except (OSError, SyntaxError, ValueError, EOFError, struct.error) as exc:
        raise _broken(fmt, data, exc) from exc


def _broken(fmt: ImageFormat, data: bytes, exc: BaseException) -> ImageRejected:
    """``truncated`` when the file evidently ends early, else ``corrupt``."""
    text = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    if isinstance(exc, UnidentifiedImageError):
        text = f"Pillow cannot read its {fmt} header"  # its own message names a BytesIO
    if "truncated" in text.lower() or isinstance(exc, EOFError) or _ends_early(fmt, data):
        return ImageRejected("truncated", f"{fmt} file ends early ({text})")
    return ImageRejected("corrupt", f"{fmt} data do not decode ({text})")


def _ends_early(fmt: ImageFormat, data: bytes) -> bool:
    """Structural evidence that a file was cut short: an end marker or size field it lacks."""
    if fmt == "png":
        return b"IEND" not in data
    if fmt == "jpeg":
        return b"\xff\xd9" not in data
    if fmt == "gif":
        return len(data) < 14 or b";" not in data[-16:]
    if fmt == "webp":
        (riff_size,) = struct.unpack_from("<I", data, 4)
        return len(data) < riff_size + 8
    if fmt == "bmp":
        (file_size,) = struct.unpack_from("<I", data, 2)
        return 0 < len(data) < file_size  # some writers leave the size field 0
    return False


def _upright(image: Image.Image) -> Image.Image:
    """Apply the EXIF orientation (phones store pictures sideways and say so in EXIF). A
    malformed EXIF block leaves the image as stored rather than refusing it."""
    try:
        orientation = image.getexif().get(EXIF_ORIENTATION, 1)
    except (OSError, SyntaxError, ValueError, KeyError, TypeError, struct.error):
        return image
    method = _TRANSPOSE.get(orientation) if isinstance(orientation, int) else None
    return image if method is None else image.transpose(method)


def _to_rgb(image: Image.Image) -> np.ndarray:
    """The image as a (height, width, 3) uint8 RGB array."""
    mode = image.mode
    if mode in ("I;16", "I;16L", "I;16B", "I;16N", "I"):
        # 16-bit greyscale (PNG): Pillow's convert would clip at 255, not scale.
        wide = np.asarray(image, dtype=np.uint32)
        grey = (np.clip(wide, 0, 65535) >> 8).astype(np.uint8)
        return np.ascontiguousarray(np.repeat(grey[:, :, None], 3, axis=2))
    if mode == "F":
        grey = np.clip(np.asarray(image, dtype=np.float32), 0, 255).astype(np.uint8)
        return np.ascontiguousarray(np.repeat(grey[:, :, None], 3, axis=2))
    has_alpha = mode in ("RGBA", "LA", "PA", "RGBa", "La") or "transparency" in image.info
    if has_alpha:
        rgba = image.convert("RGBA")
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        image = Image.alpha_composite(white, rgba)
    if image.mode != "RGB":
        image = image.convert("RGB")
    return np.array(image, dtype=np.uint8)
