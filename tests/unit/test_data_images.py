"""Image headers and decoding: conversions, EXIF orientation, truncated and non-image files."""

from __future__ import annotations

import io
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image

from brittle.data.images import (
    ImageError,
    ImageNote,
    decode_image,
    is_image_path,
    jpeg_problem,
    read_image_header,
)
from brittle.errors import DatasetError


def _noise(h: int, w: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)


def _jpeg_bytes(img: np.ndarray) -> bytes:
    ok, buf = cv2.imencode(".jpg", img)
    assert ok
    return buf.tobytes()


def _write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


def _error(fn: Callable[[Path], object], path: Path) -> str:
    with pytest.raises(ImageError) as info:
        fn(path)
    assert isinstance(info.value, DatasetError)
    return str(info.value)


def test_rgb_jpeg_has_no_notes_and_decodes_to_rgb(tmp_path: Path) -> None:
    bgr = np.zeros((8, 10, 3), np.uint8)
    bgr[..., 2] = 255  # red in OpenCV's BGR order
    path = tmp_path / "red.png"
    cv2.imwrite(str(path), bgr)
    assert read_image_header(path) == (10, 8, ())
    rgb = decode_image(path)
    assert rgb.shape == (8, 10, 3)
    assert rgb.dtype == np.uint8
    assert rgb[0, 0].tolist() == [255, 0, 0]


@pytest.mark.parametrize(
    ("name", "write", "message"),
    [
        (
            "gray.png",
            lambda p: cv2.imwrite(str(p), np.full((6, 9), 80, np.uint8)),
            "grayscale image converted to RGB uint8",
        ),
        (
            "gray.jpg",
            lambda p: cv2.imwrite(str(p), np.full((6, 9), 80, np.uint8)),
            "grayscale image converted to RGB uint8",
        ),
        (
            "rgba.png",
            lambda p: cv2.imwrite(str(p), np.full((6, 9, 4), 80, np.uint8)),
            "RGBA image converted to RGB uint8 (alpha channel dropped)",
        ),
        (
            "gray16.png",
            lambda p: cv2.imwrite(str(p), np.full((6, 9), 65535, np.uint16)),
            "16-bit grayscale image converted to RGB uint8",
        ),
        (
            "rgb16.png",
            lambda p: cv2.imwrite(str(p), np.full((6, 9, 3), 65535, np.uint16)),
            "16-bit RGB image converted to RGB uint8",
        ),
        (
            "palette.png",
            lambda p: Image.fromarray(_noise(6, 9)).convert("P").save(p),
            "palette image converted to RGB uint8",
        ),
    ],
)
def test_non_rgb8_images_are_noted_and_decoded_to_rgb_uint8(
    tmp_path: Path, name: str, write: Callable[[Path], object], message: str
) -> None:
    path = tmp_path / name
    write(path)
    assert read_image_header(path) == (9, 6, (ImageNote("converted_image", message),))
    image = decode_image(path)
    assert image.shape == (6, 9, 3)
    assert image.dtype == np.uint8


def test_sixteen_bit_values_are_scaled_to_eight_bits(tmp_path: Path) -> None:
    path = tmp_path / "white16.png"
    cv2.imwrite(str(path), np.full((4, 4), 65535, np.uint16))
    assert decode_image(path).max() == 255


def _oriented(path: Path, orientation: int, fmt: str) -> None:
    """A 60x40 (w x h) image with a white block in its stored top-left corner."""
    rgb = np.zeros((40, 60, 3), np.uint8)
    rgb[:10, :10] = 255
    exif = Image.Exif()
    exif[0x0112] = orientation
    Image.fromarray(rgb).save(path, format=fmt, exif=exif.tobytes())


@pytest.mark.parametrize(("name", "fmt"), [("o6.jpg", "JPEG"), ("o6.tif", "TIFF")])
def test_exif_orientation_6_gives_the_upright_size_and_pixels(
    tmp_path: Path, name: str, fmt: str
) -> None:
    path = tmp_path / name
    _oriented(path, 6, fmt)
    width, height, notes = read_image_header(path)
    assert (width, height) == (40, 60)
    assert notes == (
        ImageNote("exif_rotated", "EXIF orientation 6: used upright as 40x60 (stored as 60x40)"),
    )
    image = decode_image(path)
    assert image.shape == (60, 40, 3)
    # Orientation 6 displays the stored image turned 90° clockwise: top-left -> top-right.
    assert image[:8, 32:].mean() > 200
    assert image[:8, :8].mean() < 50


def test_exif_orientation_3_keeps_the_size(tmp_path: Path) -> None:
    path = tmp_path / "o3.jpg"
    _oriented(path, 3, "JPEG")
    assert read_image_header(path) == (
        60,
        40,
        (ImageNote("exif_rotated", "EXIF orientation 3: used upright as 60x40 (stored as 60x40)"),),
    )
    assert decode_image(path)[-8:, -8:].mean() > 200  # rotated 180°


def _progressive(img: np.ndarray) -> bytes:
    out = io.BytesIO()
    Image.fromarray(img).save(out, format="JPEG", progressive=True)
    return out.getvalue()


def _restart_markers(img: np.ndarray) -> bytes:
    ok, buf = cv2.imencode(".jpg", img, [cv2.IMWRITE_JPEG_RST_INTERVAL, 2])
    assert ok
    return buf.tobytes()


@pytest.mark.parametrize("encode", [_jpeg_bytes, _progressive, _restart_markers])
def test_truncated_jpeg_is_refused_by_header_and_decode(
    tmp_path: Path, encode: Callable[[np.ndarray], bytes]
) -> None:
    data = encode(_noise(64, 64))
    whole = _write(tmp_path / "whole.jpg", data)
    assert read_image_header(whole) == (64, 64, ())
    assert decode_image(whole).shape == (64, 64, 3)
    path = _write(tmp_path / "cut.jpg", data[: len(data) // 2])
    expected = f"{path}: truncated JPEG: no end-of-image marker"
    assert _error(read_image_header, path) == expected
    assert _error(decode_image, path) == expected


def test_an_exif_thumbnails_end_marker_does_not_hide_truncation(tmp_path: Path) -> None:
    main = _jpeg_bytes(_noise(64, 64))
    thumb = _jpeg_bytes(_noise(8, 8, seed=1))
    payload = b"Exif\x00\x00" + thumb
    app1 = b"\xff\xe1" + (len(payload) + 2).to_bytes(2, "big") + payload
    whole = main[:2] + app1 + main[2:]
    assert jpeg_problem(whole) is None
    assert decode_image(_write(tmp_path / "whole.jpg", whole)).shape == (64, 64, 3)

    cut = whole[: len(whole) - 500]
    assert b"\xff\xd9" in cut  # the thumbnail's end-of-image marker is still there
    path = _write(tmp_path / "cut.jpg", cut)
    assert _error(read_image_header, path) == f"{path}: truncated JPEG: no end-of-image marker"
    assert _error(decode_image, path) == f"{path}: truncated JPEG: no end-of-image marker"


def test_bytes_after_the_end_of_image_marker_are_allowed(tmp_path: Path) -> None:
    path = _write(tmp_path / "trailer.jpg", _jpeg_bytes(_noise(16, 16)) + b"camera-trailer" * 10)
    assert read_image_header(path) == (16, 16, ())
    assert decode_image(path).shape == (16, 16, 3)


def test_truncated_png_is_refused(tmp_path: Path) -> None:
    _ok, buf = cv2.imencode(".png", _noise(32, 32))
    data = buf.tobytes()
    for name, cut in (("no-iend.png", data[:-12]), ("half.png", data[: len(data) // 2])):
        path = _write(tmp_path / name, cut)
        assert _error(read_image_header, path) == f"{path}: truncated PNG: no IEND chunk"
        assert _error(decode_image, path) == f"{path}: truncated PNG: no IEND chunk"


def test_truncated_webp_is_refused(tmp_path: Path) -> None:
    full = tmp_path / "full.webp"
    Image.fromarray(_noise(32, 32)).save(full, format="WEBP")
    data = full.read_bytes()
    path = _write(tmp_path / "cut.webp", data[: len(data) - 20])
    expected = f"{path}: truncated WebP: file is shorter than its RIFF header says"
    assert _error(read_image_header, path) == expected
    assert _error(decode_image, path) == expected


def test_a_text_file_with_an_image_suffix(tmp_path: Path) -> None:
    path = _write(tmp_path / "notes.jpg", b"these are not pixels\n")
    assert _error(read_image_header, path) == f"{path}: not an image or unsupported format"
    assert _error(decode_image, path) == f"{path}: not an image or unsupported format"


def test_a_format_opencv_cannot_decode(tmp_path: Path) -> None:
    path = tmp_path / "icon.png"
    Image.fromarray(_noise(16, 16)).save(path, format="ICO")
    assert _error(read_image_header, path) == (
        f"{path}: unsupported image format ICO; brittle reads JPEG, PNG, BMP, WebP and TIFF"
    )


def test_empty_missing_and_folder_paths(tmp_path: Path) -> None:
    empty = _write(tmp_path / "empty.png", b"")
    assert _error(read_image_header, empty) == f"{empty}: empty file"
    assert _error(decode_image, empty) == f"{empty}: empty file"
    missing = tmp_path / "missing.png"
    assert _error(read_image_header, missing) == f"{missing}: file not found"
    assert _error(decode_image, missing) == f"{missing}: file not found"
    folder = tmp_path / "folder.jpg"
    folder.mkdir()
    assert _error(read_image_header, folder) == f"{folder}: is a folder, not an image file"


def test_image_suffixes_are_case_insensitive() -> None:
    for name in ("a.jpg", "a.JPEG", "a.Png", "a.bmp", "a.webp", "a.TIF", "a.tiff"):
        assert is_image_path(Path(name)), name
    for name in ("a.gif", "a.txt", "a", "a.jpg.txt"):
        assert not is_image_path(Path(name)), name
