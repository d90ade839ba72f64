"""Image files: cheap header reads at index time, full decodes at load time.

:func:`read_image_header` gives the size a model will see (after EXIF orientation)
without decoding pixels; :func:`decode_image` gives the pixels as RGB uint8. Both
refuse truncated JPEG and PNG files explicitly, because decoders tend to return a
half-grey image with only a warning on stderr.

>>> is_image_path(Path("photos/IMG_0001.JPG")), is_image_path(Path("labels/a.txt"))
(True, False)
>>> jpeg_problem(b"\\xff\\xd8\\xff\\xda\\x00\\x02\\x12\\x34")
'truncated JPEG: no end-of-image marker'
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import IO, NamedTuple

import cv2
import numpy as np
from numpy.typing import NDArray
from PIL import Image, ImageFile, TiffImagePlugin, UnidentifiedImageError

from brittle.errors import DatasetError

__all__ = [
    "IMAGE_SUFFIXES",
    "ImageError",
    "ImageHeader",
    "ImageNote",
    "decode_image",
    "decode_image_bytes",
    "is_image_path",
    "jpeg_problem",
    "png_problem",
    "read_image_header",
]

#: File suffixes (lower case) that readers treat as images.
IMAGE_SUFFIXES: frozenset[str] = frozenset(
    {".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff"}
)

# Pillow format names whose files OpenCV can decode; anything else Pillow happens to
# understand (PSD, ICO, EPS, ...) would pass indexing only to fail at load time.
_DECODABLE = frozenset({"JPEG", "MPO", "PNG", "BMP", "DIB", "WEBP", "TIFF", "GIF"})

_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_PNG_IEND = b"\x00\x00\x00\x00IEND\xaeB`\x82"
_EXIF_ORIENTATION = 0x0112

_MODE_NAMES = {
    "1": "1-bit black-and-white",
    "L": "grayscale",
    "LA": "grayscale",
    "La": "grayscale",
    "P": "palette",
    "PA": "palette",
    "RGBA": "RGBA",
    "RGBa": "RGBA",
    "RGBX": "RGBX",
    "CMYK": "CMYK",
    "YCbCr": "YCbCr",
    "LAB": "Lab",
    "HSV": "HSV",
    "I": "32-bit integer grayscale",
    "I;16": "16-bit grayscale",
    "I;16B": "16-bit grayscale",
    "I;16L": "16-bit grayscale",
    "I;16N": "16-bit grayscale",
    "F": "32-bit float grayscale",
}


class ImageError(DatasetError):
    """An image file that cannot be read; ``reason`` is the message without the path.

    >>> str(ImageError(Path("a.jpg"), "empty file"))
    'a.jpg: empty file'
    """

    def __init__(self, path: Path, reason: str) -> None:
        super().__init__(f"{path}: {reason}")
        self.path = path
        self.reason = reason


class ImageNote(NamedTuple):
    """Something a reader should count about an image: an issue kind and its message."""

    kind: str
    message: str


class ImageHeader(NamedTuple):
    """Size after EXIF orientation, plus ``converted_image`` / ``exif_rotated`` notes."""

    width: int
    height: int
    notes: tuple[ImageNote, ...]


def is_image_path(path: Path) -> bool:
    """True when ``path`` has one of :data:`IMAGE_SUFFIXES` (any case)."""
    return path.suffix.lower() in IMAGE_SUFFIXES


def jpeg_problem(data: bytes) -> str | None:
    """Why the JPEG in ``data`` is incomplete, or None when it has an end-of-image marker.

    Walks the marker segments from SOI, skipping each segment by its length so that the
    EOI of an EXIF thumbnail (inside APP1) is never mistaken for the image's own, and
    requires an EOI after the first start-of-scan. Bytes after the EOI are allowed
    (some cameras append data there).

    >>> jpeg_problem(b"\\xff\\xd8\\xff\\xda\\x00\\x02\\x12\\xff\\x00\\x34\\xff\\xd9") is None
    True
    >>> thumb = b"\\xff\\xe1\\x00\\x06\\xff\\xd9\\xff\\xd9"  # APP1 whose payload holds FFD9
    >>> jpeg_problem(b"\\xff\\xd8" + thumb)
    'truncated JPEG: no end-of-image marker'
    """
    if not data.startswith(b"\xff\xd8"):
        return "not a JPEG file (no start-of-image marker)"
    n = len(data)
    pos = 2
    seen_scan = False
    while True:
        # libjpeg also skips stray bytes between segments, so search rather than insist.
        ff = data.find(b"\xff", pos)
        if ff < 0 or ff + 1 >= n:
            return "truncated JPEG: no end-of-image marker"
        marker = data[ff + 1]
        if marker == 0xFF:  # fill byte before a marker
            pos = ff + 1
            continue
        # Stuffed 0xFF00 and restart markers occur inside scan data and have no length.
        if marker == 0x00 or 0xD0 <= marker <= 0xD7 or marker in (0x01, 0xD8):
            pos = ff + 2
            continue
        if marker == 0xD9:
            return None if seen_scan else "corrupt JPEG: end-of-image marker before any image data"
        if ff + 4 > n:
            return "truncated JPEG: no end-of-image marker"
        length = int.from_bytes(data[ff + 2 : ff + 4], "big")
        if length < 2:
            return f"corrupt JPEG: invalid segment length {length} at byte {ff}"
        pos = ff + 2 + length
        if pos > n:
            return "truncated JPEG: no end-of-image marker"
        if marker == 0xDA:
            seen_scan = True


def png_problem(data: bytes) -> str | None:
    """Why the PNG in ``data`` is incomplete, or None when its chunks end with IEND.

    >>> png_problem(b"\\x89PNG\\r\\n\\x1a\\n" + b"\\x00\\x00\\x00\\x00IEND\\xaeB`\\x82") is None
    True
    >>> png_problem(b"\\x89PNG\\r\\n\\x1a\\n\\x00\\x00\\x00\\x0dIHDR")
    'truncated PNG: no IEND chunk'
    """
    if not data.startswith(_PNG_SIGNATURE):
        return "not a PNG file (no PNG signature)"
    n = len(data)
    pos = len(_PNG_SIGNATURE)
    while pos + 8 <= n:
        length = int.from_bytes(data[pos : pos + 4], "big")
        if data[pos + 4 : pos + 8] == b"IEND":
            return None
        pos += 12 + length  # length, type, payload, CRC
    return "truncated PNG: no IEND chunk"


def _completeness_problem(data: bytes) -> str | None:
    if data.startswith(b"\xff\xd8"):
        return jpeg_problem(data)
    if data.startswith(_PNG_SIGNATURE):
        return png_problem(data)
    if data.startswith(b"RIFF") and data[8:12] == b"WEBP":
        riff_end = 8 + int.from_bytes(data[4:8], "little")
        if len(data) < riff_end:
            return "truncated WebP: file is shorter than its RIFF header says"
    return None


def decode_image_bytes(data: bytes, path: Path) -> NDArray[np.uint8]:
    """Decode an image file's bytes to RGB uint8 (H, W, 3), upright per its EXIF orientation.

    Grayscale, RGBA (alpha dropped), palette and 16-bit images come out as 8-bit RGB.
    ``path`` is only used in error messages.

    >>> ok, buf = cv2.imencode(".png", np.full((2, 3), 200, np.uint8))
    >>> decode_image_bytes(buf.tobytes(), Path("gray.png")).shape
    (2, 3, 3)
    >>> decode_image_bytes(b"hello", Path("notes.jpg"))
    Traceback (most recent call last):
    ...
    brittle.data.images.ImageError: notes.jpg: not an image or unsupported format
    """
    if not data:
        raise ImageError(path, "empty file")
    problem = _completeness_problem(data)
    if problem is not None:
        raise ImageError(path, problem)
    try:
        image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR_RGB)
    except cv2.error as exc:
        raise ImageError(path, f"not an image or unsupported format ({exc})") from exc
    if image is None:
        raise ImageError(path, "not an image or unsupported format")
    if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
        raise ImageError(path, f"decoded to {image.dtype} {image.shape}, expected RGB uint8")
    return np.ascontiguousarray(image)


def decode_image(path: Path) -> NDArray[np.uint8]:
    """Read and decode ``path`` to RGB uint8 (H, W, 3); see :func:`decode_image_bytes`.

    >>> decode_image(Path("no/such/image.jpg"))
    Traceback (most recent call last):
    ...
    brittle.data.images.ImageError: no/such/image.jpg: file not found
    """
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise ImageError(path, "file not found") from None
    except OSError as exc:
        raise ImageError(path, f"cannot read the file ({exc.strerror or exc})") from None
    return decode_image_bytes(data, path)


def _tail_problem(f: IO[bytes], head: bytes, size: int) -> str | None:
    """Cheap truncation check from the file's last bytes; a full walk only when unsure."""
    if head.startswith(b"\xff\xd8"):
        f.seek(max(0, size - 64))
        if f.read().rstrip(b"\x00").endswith(b"\xff\xd9"):
            return None
    elif head.startswith(_PNG_SIGNATURE):
        f.seek(max(0, size - len(_PNG_IEND)))
        if f.read() == _PNG_IEND:
            return None
    elif not (head.startswith(b"RIFF") and head[8:12] == b"WEBP"):
        return None
    f.seek(0)
    return _completeness_problem(f.read())


def _orientation(im: Image.Image) -> int:
    """The EXIF orientation OpenCV will apply (1 when none); XMP orientation is ignored."""
    value: object
    if isinstance(im, TiffImagePlugin.TiffImageFile):
        value = im.tag_v2.get(_EXIF_ORIENTATION)
    else:
        raw = im.info.get("exif")
        if not raw:
            return 1
        exif = Image.Exif()
        try:
            exif.load(raw)
        except Exception:  # a malformed EXIF block is ignored by decoders too
            return 1
        value = exif.get(_EXIF_ORIENTATION)
    return value if isinstance(value, int) and 1 <= value <= 8 else 1


def _is_sixteen_bit(im: Image.Image) -> bool:
    # Pillow opens 48-bit RGB PNGs as mode "RGB"; only the raw mode reveals the depth.
    tiles = im.tile if isinstance(im, ImageFile.ImageFile) else []
    for tile in tiles:
        args = tile.args
        raw = args if isinstance(args, str) else (args[0] if args else "")
        if isinstance(raw, str) and ";16" in raw:
            return True
    return False


def _conversion_note(im: Image.Image) -> ImageNote | None:
    mode = im.mode
    if mode == "RGB":
        if not _is_sixteen_bit(im):
            return None
        what = "16-bit RGB"
    else:
        what = _MODE_NAMES.get(mode, f"mode {mode}")
    alpha = " (alpha channel dropped)" if mode in ("LA", "La", "PA", "RGBA", "RGBa") else ""
    if mode == "P" and "transparency" in im.info:
        alpha = " (transparency dropped)"
    return ImageNote("converted_image", f"{what} image converted to RGB uint8{alpha}")


def read_image_header(path: Path) -> ImageHeader:
    """Width and height after EXIF orientation, and notes, without decoding pixels.

    Also rejects truncated JPEG/PNG/WebP files (from the file's tail, so it stays cheap)
    and formats OpenCV cannot decode. Raises :class:`ImageError` with the reason.

    >>> import tempfile
    >>> with tempfile.TemporaryDirectory() as d:
    ...     p = Path(d) / "gray.png"
    ...     _ = cv2.imwrite(str(p), np.zeros((4, 6), np.uint8))
    ...     read_image_header(p)
    ImageHeader(width=6, height=4, notes=(ImageNote(kind='converted_image', \
message='grayscale image converted to RGB uint8'),))
    """
    try:
        with path.open("rb") as f:
            size = os.fstat(f.fileno()).st_size
            if size == 0:
                raise ImageError(path, "empty file")
            head = f.read(16)
            problem = _tail_problem(f, head, size)
            if problem is not None:
                raise ImageError(path, problem)
            f.seek(0)
            return _header_from(path, f)
    except FileNotFoundError:
        raise ImageError(path, "file not found") from None
    except IsADirectoryError:
        raise ImageError(path, "is a folder, not an image file") from None
    except ImageError:
        raise
    except OSError as exc:
        raise ImageError(path, f"cannot read the file ({exc.strerror or exc})") from None


def _header_from(path: Path, f: IO[bytes]) -> ImageHeader:
    try:
        im = Image.open(f)
    except UnidentifiedImageError:
        raise ImageError(path, "not an image or unsupported format") from None
    # Pillow plugins raise many exception types (SyntaxError, TypeError, struct.error,
    # DecompressionBombError ...) for broken headers; all of them mean "unreadable".
    except Exception as exc:
        raise ImageError(path, f"unreadable image header ({exc})") from None
    with im:
        if im.format not in _DECODABLE:
            raise ImageError(
                path,
                f"unsupported image format {im.format}; brittle reads JPEG, PNG, BMP, "
                "WebP and TIFF",
            )
        width, height = im.size
        orientation = _orientation(im)
        notes: list[ImageNote] = []
        note = _conversion_note(im)
        if note is not None:
            notes.append(note)
        # Pillow already reports a TIFF's size upright; for other formats it is as stored.
        swapped = (height, width) if orientation >= 5 else (width, height)
        if isinstance(im, TiffImagePlugin.TiffImageFile):
            stored = swapped
        else:
            stored, (width, height) = (width, height), swapped
        if orientation != 1:
            notes.append(
                ImageNote(
                    "exif_rotated",
                    f"EXIF orientation {orientation}: used upright as {width}x{height} "
                    f"(stored as {stored[0]}x{stored[1]})",
                )
            )
    return ImageHeader(width, height, tuple(notes))
