"""Decoding untrusted image bytes: every accepted format and mode comes out as upright RGB, and
every hostile or broken file is refused with its reason before it costs memory."""

from __future__ import annotations

import hashlib
import io
import pickle
import struct
import time
import zlib

import numpy as np
import pytest
from PIL import Image, ImageFile

from core.errors import FetchFailed, ImageRejected, WardenError
from imagery.decoding import DecodedImage, decode_image, sniff_format

MAX_BYTES = 10 * 1024 * 1024
MAX_PIXELS = 40_000_000


def decode(data: bytes, **kwargs: object) -> DecodedImage:
    options: dict[str, object] = {"max_bytes": MAX_BYTES, "max_pixels": MAX_PIXELS}
    options.update(kwargs)
    return decode_image(data, **options)  # type: ignore[arg-type]


def rejected(data: bytes, **kwargs: object) -> ImageRejected:
    with pytest.raises(ImageRejected) as info:
        decode(data, **kwargs)
    return info.value


def encode(image: Image.Image, fmt: str, **params: object) -> bytes:
    out = io.BytesIO()
    image.save(out, fmt, **params)
    return out.getvalue()


def gradient(width: int, height: int) -> Image.Image:
    """A smooth RGB picture (compresses well, survives JPEG and WebP)."""
    x = np.linspace(0, 255, width, dtype=np.float32)[None, :]
    y = np.linspace(0, 255, height, dtype=np.float32)[:, None]
    rgb = np.stack(
        [
            np.broadcast_to(x, (height, width)),
            np.broadcast_to(y, (height, width)),
            np.full((height, width), 90, np.float32),
        ],
        axis=2,
    )
    return Image.fromarray(rgb.astype(np.uint8), "RGB")


def chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))


def handmade_png(width: int, height: int, rows: bytes = b"\x00\x00\x00\x00") -> bytes:
    """A PNG with the header we choose and a few bytes of pixel data: a decompression bomb when
    the header claims a size its data could never fill cheaply."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", ihdr)
        + chunk(b"IDAT", zlib.compress(rows))
        + chunk(b"IEND", b"")
    )


# --- what decodes -------------------------------------------------------------------------


@pytest.mark.parametrize("fmt", ["JPEG", "PNG", "GIF", "WEBP", "BMP"])
@pytest.mark.parametrize("size", [(1, 1), (17, 5), (640, 480), (3000, 40)])
def test_each_format_and_size_decodes_to_rgb(fmt: str, size: tuple[int, int]) -> None:
    width, height = size
    data = encode(gradient(width, height), fmt)
    image = decode(data)
    assert image.format == {"JPEG": "jpeg", "WEBP": "webp"}.get(fmt, fmt.lower())
    assert (image.width, image.height) == size
    assert image.pixels.shape == (height, width, 3)
    assert image.pixels.dtype == np.uint8
    assert image.sha256 == hashlib.sha256(data).hexdigest()
    if width > 16:  # the picture survived (lossy and palette formats: roughly)
        expected = np.asarray(gradient(width, height), dtype=np.int16)
        error = np.abs(image.pixels.astype(np.int16) - expected).mean()
        assert error < 12, f"{fmt} mean error {error}"


@pytest.mark.parametrize(
    ("mode", "fmt", "colour", "expected"),
    [
        ("L", "JPEG", 200, (200, 200, 200)),
        ("CMYK", "JPEG", (0, 255, 255, 0), (255, 0, 0)),  # red in CMYK
        ("L", "PNG", 77, (77, 77, 77)),
        ("1", "PNG", 1, (255, 255, 255)),
        ("P", "BMP", 3, None),
        ("LA", "PNG", (50, 255), (50, 50, 50)),
        ("RGBA", "PNG", (10, 20, 30, 255), (10, 20, 30)),
        ("RGBA", "WEBP", (10, 200, 30, 255), (10, 200, 30)),
    ],
)
def test_modes_are_converted_to_rgb(
    mode: str, fmt: str, colour: object, expected: tuple[int, int, int] | None
) -> None:
    source = Image.new(mode, (24, 16), colour)  # type: ignore[arg-type]
    if mode == "P":
        source.putpalette([0, 0, 0, 255, 0, 0, 0, 255, 0, 0, 0, 255] + [0] * 756)
        expected = (0, 0, 255)  # index 3
    image = decode(encode(source, fmt))
    assert image.pixels.shape == (16, 24, 3)
    assert expected is not None
    tolerance = 8 if fmt in ("JPEG", "WEBP") else 0  # lossy formats: roughly
    assert np.abs(image.pixels.astype(int) - np.array(expected)).max() <= tolerance


def test_transparency_is_composited_on_white() -> None:
    clear = Image.new("RGBA", (8, 8), (255, 0, 0, 0))  # invisible red
    half = Image.new("RGBA", (8, 8), (0, 0, 0, 128))  # half-transparent black
    assert (decode(encode(clear, "PNG")).pixels == 255).all()
    assert np.abs(decode(encode(half, "PNG")).pixels.astype(int) - 127).max() <= 1
    # A palette image with a transparent index (GIF): the transparent pixels are white.
    gif = Image.new("P", (8, 8), 1)
    gif.putpalette([0, 0, 0, 255, 0, 0] + [0] * 762)
    gif.paste(0, (0, 0, 4, 8))
    pixels = decode(encode(gif, "GIF", transparency=0)).pixels
    assert (pixels[:, :4] == 255).all()
    assert (pixels[:, 4:] == (255, 0, 0)).all()


def test_sixteen_bit_greyscale_is_scaled_not_clipped() -> None:
    values = np.array([[0, 32768, 65535]], dtype=np.uint16)
    image = decode(encode(Image.fromarray(values), "PNG"))
    assert image.pixels[0, :, 0].tolist() == [0, 128, 255]


def test_exif_orientation_turns_the_picture_upright() -> None:
    # Stored 40 wide and 20 high with a red block top-left; orientation 6 says "rotate 90°
    # clockwise to view": upright it is 20 wide, 40 high, the block at the top right.
    stored = Image.new("RGB", (40, 20), (255, 255, 255))
    stored.paste((255, 0, 0), (0, 0, 10, 10))
    exif = Image.Exif()
    exif[0x0112] = 6
    image = decode(encode(stored, "JPEG", exif=exif.tobytes(), quality=95))
    assert (image.width, image.height) == (20, 40)
    assert image.pixels[2, 17, 0] > 200 and image.pixels[2, 17, 1] < 60  # red, top right
    assert image.pixels[2, 2].min() > 200  # white, top left


@pytest.mark.filterwarnings("ignore:Corrupt EXIF data")
def test_a_malformed_exif_block_leaves_the_picture_as_stored() -> None:
    data = encode(Image.new("RGB", (30, 10), (0, 0, 255)), "JPEG", exif=b"Exif\x00\x00II*\x00junk")
    image = decode(data)
    assert (image.width, image.height) == (30, 10)


@pytest.mark.parametrize("fmt", ["GIF", "WEBP"])
def test_animations_give_their_first_frame(fmt: str) -> None:
    frames = [Image.new("RGB", (16, 16), colour) for colour in ((255, 0, 0), (0, 0, 255))]
    data = encode(frames[0], fmt, save_all=True, append_images=frames[1:], duration=100, loop=0)
    assert Image.open(io.BytesIO(data)).n_frames == 2  # type: ignore[attr-defined]
    pixels = decode(data).pixels
    assert pixels[8, 8, 0] > 200 and pixels[8, 8, 2] < 60


def test_pixels_are_read_only() -> None:
    image = decode(encode(gradient(4, 4), "PNG"))
    with pytest.raises(ValueError):
        image.pixels[0, 0, 0] = 1


def test_declared_types_that_agree_are_accepted() -> None:
    data = encode(gradient(4, 4), "PNG")
    for declared in ("image/png", "Image/PNG; charset=binary", "application/octet-stream", ""):
        assert decode(data, declared_type=declared).format == "png"
    assert decode(encode(gradient(4, 4), "JPEG"), declared_type="image/jpg").format == "jpeg"


def test_sniff_format() -> None:
    for fmt, name in (
        ("JPEG", "jpeg"),
        ("PNG", "png"),
        ("GIF", "gif"),
        ("WEBP", "webp"),
        ("BMP", "bmp"),
    ):
        assert sniff_format(encode(gradient(3, 3), fmt)) == name
    assert sniff_format(b"") is None
    assert sniff_format(b"BMW drivers never indicate, a text file starting with BM") is None
    assert sniff_format(b"RIFF\x00\x00\x00\x00WAVEfmt ") is None  # a WAV file
    assert sniff_format(encode(gradient(3, 3), "TIFF")) is None


# --- what is refused ----------------------------------------------------------------------


def test_an_oversized_file_is_refused_before_anything_else() -> None:
    data = encode(gradient(64, 64), "BMP")
    error = rejected(data, max_bytes=len(data) - 1)
    assert error.reason == "too_large"
    assert str(len(data)) in str(error)
    # Even bytes that are not an image at all: the size is checked first.
    assert rejected(b"x" * 2048, max_bytes=1024).reason == "too_large"
    assert decode(data, max_bytes=len(data)).width == 64


def test_a_text_file_named_png_is_not_an_image() -> None:
    html = b"<!doctype html><html><body>hello.png</body></html>"
    assert rejected(html).reason == "not_an_image"
    assert rejected(html, declared_type="image/png").reason == "not_an_image"
    assert rejected(b"").reason == "not_an_image"


@pytest.mark.parametrize(
    ("fmt", "declared"),
    [("PNG", "image/jpeg"), ("PNG", "text/html"), ("JPEG", "image/gif"), ("GIF", "video/mp4")],
)
def test_a_declared_type_that_disagrees_with_the_bytes_is_refused(fmt: str, declared: str) -> None:
    error = rejected(encode(gradient(4, 4), fmt), declared_type=declared)
    assert error.reason == "type_mismatch"
    assert declared in str(error)


def test_known_image_formats_we_do_not_accept() -> None:
    assert rejected(encode(gradient(8, 8), "TIFF")).reason == "unsupported_format"
    svg = b'<svg xmlns="http://www.w3.org/2000/svg" width="10" height="10"/>'
    assert rejected(svg, declared_type="image/svg+xml").reason == "unsupported_format"
    heic = b"\x00\x00\x00\x18ftypheic\x00\x00\x00\x00mif1heic"
    assert rejected(heic).reason == "unsupported_format"


def test_a_decompression_bomb_is_refused_from_its_header() -> None:
    bomb = handmade_png(20_000, 20_000)
    assert len(bomb) < 100
    started = time.perf_counter()
    error = rejected(bomb)
    # Refused from the header: decoding 400 megapixels would take seconds and 1.2 GB.
    assert time.perf_counter() - started < 0.5
    assert error.reason == "decompression_bomb"
    assert "20000x20000" in str(error)
    # The limit is ours, exact: one pixel over is refused, at the limit decodes.
    data = encode(gradient(100, 50), "PNG")
    assert rejected(data, max_pixels=4_999).reason == "decompression_bomb"
    assert decode(data, max_pixels=5_000).width == 100


def patch_size(fmt: str, data: bytes, width: int, height: int) -> bytes:
    """``data`` with the header's size fields rewritten (the pixel data left as they are)."""
    out = bytearray(data)
    if fmt == "GIF":
        out[6:10] = struct.pack("<HH", width, height)  # the logical screen
    elif fmt == "BMP":
        out[18:26] = struct.pack("<ii", width, height)
    elif fmt == "WEBP":  # lossy VP8: 14-bit sizes
        assert out[12:16] == b"VP8 "
        out[26:30] = struct.pack("<HH", width, height)
    elif fmt == "WEBP-ANIMATED":  # VP8X: the canvas, 24-bit sizes minus one
        assert out[12:16] == b"VP8X"
        out[24:27] = (width - 1).to_bytes(3, "little")
        out[27:30] = (height - 1).to_bytes(3, "little")
    elif fmt == "JPEG":
        sof = out.index(b"\xff\xc0")
        out[sof + 5 : sof + 9] = struct.pack(">HH", height, width)
    return bytes(out)


@pytest.mark.parametrize(
    ("fmt", "width", "height"),
    [
        ("GIF", 65535, 65535),
        ("BMP", 30_000, -30_000),  # negative: stored top-down
        ("WEBP", 16383, 16383),
        ("WEBP-ANIMATED", 100_000, 100_000),
        ("JPEG", 65000, 65000),
    ],
)
def test_a_bomb_in_every_format_is_refused_from_its_header(
    fmt: str, width: int, height: int
) -> None:
    source = Image.new("RGB", (16, 16), (9, 9, 9))
    if fmt == "WEBP-ANIMATED":
        frames = [source, Image.new("RGB", (16, 16), (200, 9, 9))]
        data = encode(frames[0], "WEBP", save_all=True, append_images=frames[1:], duration=50)
    else:
        data = encode(source, fmt)
    error = rejected(patch_size(fmt, data, width, height))
    assert error.reason == "decompression_bomb"
    assert f"{width}x{abs(height)}" in str(error)


@pytest.mark.parametrize(
    ("fmt", "mode", "params"),
    [
        ("JPEG", "RGB", {}),
        ("JPEG", "RGB", {"progressive": True}),
        ("JPEG", "L", {}),
        ("PNG", "RGB", {}),
        ("PNG", "P", {}),
        ("GIF", "RGB", {}),
        ("WEBP", "RGB", {}),
        ("WEBP", "RGB", {"lossless": True}),
        ("WEBP", "RGBA", {}),  # alpha: the extended (VP8X) header
        ("BMP", "RGB", {}),
        ("BMP", "P", {}),
    ],
)
def test_our_header_reading_agrees_with_pillow(
    fmt: str, mode: str, params: dict[str, object]
) -> None:
    from imagery.decoding import _header_size

    for width, height in ((1, 1), (301, 7), (4000, 3)):
        data = encode(gradient(width, height).convert(mode), fmt, **params)
        fmt_name = sniff_format(data)
        assert fmt_name is not None
        assert _header_size(data, fmt_name) == (width, height)
        assert Image.open(io.BytesIO(data)).size == (width, height)


def test_the_bomb_check_holds_when_pillows_own_limit_is_off(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Another library in the process may switch Pillow's limit off; ours does not depend on it.
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", None)
    assert rejected(handmade_png(20_000, 20_000)).reason == "decompression_bomb"


def test_pillows_own_bomb_error_is_mapped(monkeypatch: pytest.MonkeyPatch) -> None:
    # A caller allowing more than Pillow does: Pillow's DecompressionBombError is one reason too.
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)
    error = rejected(encode(gradient(100, 50), "PNG"), max_pixels=10**9)
    assert error.reason == "decompression_bomb"


@pytest.mark.filterwarnings("error::PIL.Image.DecompressionBombWarning")
def test_pillows_bomb_warning_raised_as_an_error_is_mapped(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Between Pillow's limit and twice it Pillow only warns; a process that turns warnings
    # into errors must still get a clean refusal, not an unexpected exception.
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 4000)
    error = rejected(encode(gradient(100, 50), "PNG"), max_pixels=10**9)
    assert error.reason == "decompression_bomb"


def test_decoding_changes_no_global_pillow_setting() -> None:
    before = (Image.MAX_IMAGE_PIXELS, ImageFile.LOAD_TRUNCATED_IMAGES)
    rejected(handmade_png(20_000, 20_000))
    decode(encode(gradient(8, 8), "PNG"))
    assert before == (Image.MAX_IMAGE_PIXELS, ImageFile.LOAD_TRUNCATED_IMAGES)


@pytest.mark.parametrize("fmt", ["JPEG", "PNG", "GIF", "WEBP", "BMP"])
@pytest.mark.parametrize("keep", [0.5, 0.9])
def test_a_truncated_file_is_refused(fmt: str, keep: float) -> None:
    rng = np.random.default_rng(7)  # noise: the pixel data is most of the file
    noise = Image.fromarray(rng.integers(0, 256, (64, 64, 3), dtype=np.uint8), "RGB")
    data = encode(noise, fmt)
    assert rejected(data[: int(len(data) * keep)]).reason == "truncated"


@pytest.mark.parametrize("fmt", ["JPEG", "PNG"])
def test_a_file_cut_inside_its_header_is_truncated(fmt: str) -> None:
    data = encode(gradient(64, 64), fmt)
    assert rejected(data[:40]).reason == "truncated"


@pytest.mark.parametrize("fmt", ["JPEG", "PNG", "WEBP", "BMP"])
def test_truncated_files_stay_refused_when_pillow_is_told_to_load_them(
    monkeypatch: pytest.MonkeyPatch, fmt: str
) -> None:
    # Pillow's LOAD_TRUNCATED_IMAGES is process-wide; should other code turn it on, a file
    # cut short must still not decode into a half-grey picture.
    monkeypatch.setattr(ImageFile, "LOAD_TRUNCATED_IMAGES", True)
    rng = np.random.default_rng(8)
    noise = Image.fromarray(rng.integers(0, 256, (64, 64, 3), dtype=np.uint8), "RGB")
    data = encode(noise, fmt)
    assert rejected(data[: len(data) // 2]).reason == "truncated"


def test_damaged_pixel_data_is_corrupt() -> None:
    data = bytearray(handmade_png(64, 64, rows=bytes(64 * (1 + 64 * 3))))
    start = data.index(b"IDAT") + 4
    data[start + 2 : start + 12] = b"\xff" * 10  # garble the zlib stream, keep the file whole
    error = rejected(bytes(data))
    assert error.reason == "corrupt"
    assert "\n" not in str(error)


def test_the_error_is_one_line_with_its_reason_and_survives_pickling() -> None:
    error = rejected(handmade_png(20_000, 20_000))
    assert isinstance(error, WardenError)
    assert not error.retriable
    assert str(error).startswith("image rejected (decompression_bomb): ")
    copy = pickle.loads(pickle.dumps(error))  # an error raised in a worker process
    assert (type(copy), copy.reason, str(copy)) == (ImageRejected, error.reason, str(error))
    failed = pickle.loads(pickle.dumps(FetchFailed("timeout", "no answer in 1 s")))
    assert failed.retriable and failed.reason == "timeout"
