"""Digital and occlusion perturbations do what their docs say, measured on their outputs.

The contract (shape, determinism, growth with severity) is checked for every perturbation in
test_perturb_contract.py; here each one is checked for its own physics: the JPEG bytes are a
plain OpenCV round trip, pixelate makes blocks of the documented size, posterize leaves at
most 2**bits levels, a dot seen through lens_distortion lands where map_points says, ...
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from brittle.perturbations import get_perturbation, perturb, rng_for
from brittle.perturbations.base import SEVERITIES, transform_boxes
from brittle.perturbations.digital import (
    COCO_SHORT_SIDE,
    ElasticTransform,
    Pixelate,
    PixelDropout,
    Posterize,
)
from brittle.perturbations.occlusion import ChromaticAberration, LensDistortion, Vignetting
from brittle.perturbations.quality import ssim

DIGITAL = [
    "jpeg_compression", "webp_compression", "pixelate", "downscale", "elastic_transform",
    "pixel_dropout", "posterize",
]  # fmt: skip
OCCLUSION = ["cutout", "dirty_lens", "vignetting", "chromatic_aberration", "lens_distortion"]


def _texture(h: int = 240, w: int = 320, seed: int = 0) -> np.ndarray:
    """Smooth colour gradients plus fine noise: every pixel differs from its neighbours."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    base = np.stack([xx * 200 / w, yy * 200 / h, (xx + yy) * 100 / (h + w) + 60], axis=2)
    img = base + rng.normal(0, 25, (h, w, 3))
    return np.clip(img, 0, 255).astype(np.uint8)


def _real(assets: Path, index: int = 0) -> np.ndarray:
    files = sorted((assets / "css-valid" / "images").glob("*.jpg"))
    return cv2.cvtColor(cv2.imread(str(files[index])), cv2.COLOR_BGR2RGB)


def _centroid(plane: np.ndarray) -> np.ndarray:
    """Intensity centroid (x, y) in box coordinates (pixel i covers [i, i + 1))."""
    p = plane.astype(np.float64)
    ys, xs = np.mgrid[0 : p.shape[0], 0 : p.shape[1]]
    total = p.sum()
    return np.array([((xs + 0.5) * p).sum() / total, ((ys + 0.5) * p).sum() / total])


def test_families_and_flags() -> None:
    for name in DIGITAL:
        assert get_perturbation(name).family == "digital", name
    for name in OCCLUSION:
        assert get_perturbation(name).family == "occlusion", name
    geometric = {n for n in DIGITAL + OCCLUSION if get_perturbation(n).geometric}
    assert geometric == {"lens_distortion"}
    # COCO-C leaves boxes alone under elastic_transform, and so does brittle.
    assert not ElasticTransform.geometric


# --- digital ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("severity", "quality"), list(zip(SEVERITIES, (25, 18, 15, 10, 7), strict=True))
)
def test_jpeg_is_a_plain_opencv_round_trip_at_the_imagenet_c_quality(
    severity: int, quality: int
) -> None:
    img = _texture()
    ok, buf = cv2.imencode(
        ".jpg", cv2.cvtColor(img, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, quality]
    )
    assert ok
    expected = cv2.cvtColor(cv2.imdecode(buf, cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)
    out = perturb(img, "jpeg_compression", severity)
    np.testing.assert_array_equal(out, expected)


def test_webp_is_a_plain_webp_round_trip() -> None:
    import io

    from PIL import Image

    img = _texture()
    for severity, quality in zip(SEVERITIES, (40, 20, 10, 5, 1), strict=True):
        buf = io.BytesIO()
        Image.fromarray(img).save(buf, "WEBP", quality=quality, method=0)
        expected = np.asarray(Image.open(io.BytesIO(buf.getvalue())).convert("RGB"))
        np.testing.assert_array_equal(perturb(img, "webp_compression", severity), expected)


def test_webp_decodes_as_pillow_does_on_real_images(assets: Path) -> None:
    """webp_compression encodes with Pillow and decodes with OpenCV (faster): both bundle
    libwebp, and the pixels must stay those of Pillow's own decoder, odd sizes included."""
    import io

    from PIL import Image

    for index in (0, 40, 80):
        full = _real(assets, index)
        for img in (full, np.ascontiguousarray(full[:333, :471])):
            for severity, quality in zip(SEVERITIES, (40, 20, 10, 5, 1), strict=True):
                buf = io.BytesIO()
                Image.fromarray(img).save(buf, "WEBP", quality=quality, method=0)
                expected = np.asarray(Image.open(io.BytesIO(buf.getvalue())).convert("RGB"))
                out = perturb(img, "webp_compression", severity)
                np.testing.assert_array_equal(out, expected, err_msg=f"{index} q{quality}")


def _run_lengths(changes: np.ndarray) -> np.ndarray:
    """Lengths of the runs between True entries of a boundary mask along one axis."""
    edges = np.concatenate([[0], np.flatnonzero(changes) + 1, [len(changes) + 1]])
    return np.diff(edges)


@pytest.mark.parametrize("side", [320, 640])
@pytest.mark.parametrize("severity", SEVERITIES)
def test_pixelate_makes_flat_blocks_of_the_documented_size(side: int, severity: int) -> None:
    img = _texture(side, side + 96, seed=severity)
    out = perturb(img, "pixelate", severity)
    c = Pixelate.C[severity - 1]
    # imagecorruptions' factor up to a short side of 480, the COCO low-res size above it.
    low = int(side * c) if side <= COCO_SHORT_SIDE else int(side * c * COCO_SHORT_SIDE / side)
    block = side / low
    # Columns (rows) change only at block boundaries, and blocks are floor/ceil(block) wide.
    col_change = (np.diff(out.astype(int), axis=1) != 0).any(axis=(0, 2))
    row_change = (np.diff(out.astype(int), axis=0) != 0).any(axis=(1, 2))
    for runs in (_run_lengths(row_change), _run_lengths(col_change)):
        assert set(runs.tolist()) <= {int(np.floor(block)), int(np.ceil(block))}, (block, runs)
    assert _run_lengths(row_change).size == low


def test_pixelate_keeps_the_coco_low_resolution_above_480() -> None:
    p = Pixelate()
    for severity in SEVERITIES:
        c = Pixelate.C[severity - 1]
        assert p.params(severity, 480, 640, np.random.default_rng())["factor"] == c
        f1280 = p.params(severity, 1280, 1280, np.random.default_rng())["factor"]
        assert f1280 * 1280 == pytest.approx(c * 480)


def _high_energy(img: np.ndarray, cutoff: float) -> float:
    """Spectral energy of the luma above ``cutoff`` cycles/pixel (either axis)."""
    luma = cv2.cvtColor(img, cv2.COLOR_RGB2GRAY).astype(np.float64)
    spec = np.abs(np.fft.fft2(luma - luma.mean())) ** 2
    fy = np.abs(np.fft.fftfreq(luma.shape[0]))[:, None]
    fx = np.abs(np.fft.fftfreq(luma.shape[1]))[None, :]
    return float(spec[(fx > cutoff) | (fy > cutoff)].sum())


@pytest.mark.parametrize("severity", SEVERITIES)
def test_downscale_removes_detail_finer_than_the_capture_resolution(severity: int) -> None:
    img = _texture(640, 640, seed=severity)
    params = get_perturbation("downscale").params(severity, 640, 640, np.random.default_rng())
    factor = params["factor"]
    assert factor * 640 == pytest.approx((288, 240, 180, 144, 112)[severity - 1])
    out = perturb(img, "downscale", severity)
    # Well above the capture's Nyquist frequency (factor / 2 cycles per output pixel) almost
    # nothing is left; the bilinear upsampling leaks a little just above it.
    cutoff = 0.75 * factor
    assert _high_energy(out, cutoff) < 0.05 * _high_energy(img, cutoff)
    # ... while the coarse structure is kept.
    small = cv2.resize(img, (64, 64), interpolation=cv2.INTER_AREA).astype(int)
    small_out = cv2.resize(out, (64, 64), interpolation=cv2.INTER_AREA).astype(int)
    assert np.abs(small - small_out).mean() < 4


def test_downscale_leaves_images_smaller_than_the_capture_alone() -> None:
    img = _texture(100, 150)
    np.testing.assert_array_equal(perturb(img, "downscale", 1), img)


@pytest.mark.parametrize("severity", SEVERITIES)
def test_posterize_leaves_at_most_2_to_the_bits_levels(severity: int) -> None:
    img = _texture(seed=severity)
    bits = Posterize.BITS[severity - 1]
    out = perturb(img, "posterize", severity)
    for ch in range(3):
        assert len(np.unique(out[..., ch])) <= 2**bits
    # Rounding to evenly spread levels: no brightness shift, black and white kept.
    assert abs(float(out.mean()) - float(img.mean())) < 1.5
    ramp = np.repeat(np.arange(256, dtype=np.uint8)[None, :, None], 3, axis=2)
    r = perturb(ramp, "posterize", severity)
    assert r.min() == 0
    assert r.max() == 255
    assert np.abs(r.astype(int) - ramp).max() <= 128 // 2 ** (bits - 1)


@pytest.mark.parametrize("severity", SEVERITIES)
def test_elastic_displacement_matches_the_documented_rms(severity: int) -> None:
    # Red encodes x and green y, so (output - input) is the displacement (bilinear
    # interpolation of a ramp is exact), up to the uint8 rounding of the output.
    side = 240
    yy, xx = np.mgrid[0:side, 0:side]
    img = np.stack([xx, yy, np.full_like(xx, 128)], axis=2).astype(np.uint8)
    out = perturb(img, "elastic_transform", severity, seed=1).astype(np.float64)
    inner = slice(20, side - 20)
    dx = (out[..., 0] - xx)[inner, inner]
    dy = (out[..., 1] - yy)[inner, inner]
    rms = float(np.sqrt((dx**2 + dy**2).mean() / 2))
    rounding = 1 / 12  # variance of uniform rounding error
    documented = (1.0, 1.3, 1.8, 2.1, 2.5)[severity - 1]
    assert np.sqrt(rms**2 - rounding) == pytest.approx(documented, rel=0.15)
    # Smooth: neighbours move together (the field is correlated over ~1% of the side).
    assert np.abs(np.diff(dx, axis=1)).mean() < 0.6 * np.abs(dx).mean()


def test_elastic_scales_with_the_short_side_above_480_only() -> None:
    p = ElasticTransform()
    rng = np.random.default_rng()
    assert p.params(3, 320, 400, rng)["gain"] == 1.0
    assert p.params(3, 480, 640, rng)["gain"] == 1.0
    assert p.params(3, 960, 1280, rng)["gain"] == 2.0
    assert p.params(3, 960, 1280, rng)["sigma"] == pytest.approx(9.6)


@pytest.mark.parametrize("severity", SEVERITIES)
def test_pixel_dropout_affects_the_documented_fraction(severity: int) -> None:
    img = _texture(640, 640, seed=severity)
    out = perturb(img, "pixel_dropout", severity, seed=severity)
    changed = float((out != img).any(axis=2).mean())
    documented = PixelDropout.BLOCKS[severity - 1] + PixelDropout.DEAD[severity - 1]
    assert 0.85 * documented <= changed <= 1.01 * documented, (changed, documented)


def test_pixel_dropout_loses_whole_macroblocks_in_runs() -> None:
    img = _texture(640, 640)
    out = perturb(img, "pixel_dropout", 5, seed=3)
    block = 16  # 640 / 40, the H.264 macroblock
    lost = (out != img).any(axis=2).reshape(40, block, 40, block).mean(axis=(1, 3))
    # Blocks are lost whole; partial ones are only the scattered dead pixels.
    whole = lost > 0.9
    assert whole.sum() == round(0.15 * 40 * 40)
    assert ((lost < 0.05) | whole).all()
    runs = PixelDropout.lost_blocks(1600, 240, 40 / 3, np.random.default_rng(0))
    assert (runs > 0).sum() == 240
    assert runs.max() == round(240 / (40 / 3))


# --- occlusion --------------------------------------------------------------------------


@pytest.mark.parametrize("severity", SEVERITIES)
def test_cutout_covers_the_documented_area(severity: int) -> None:
    img = _texture(480, 640, seed=severity)
    p = get_perturbation("cutout")
    rng = rng_for(0, "cutout", severity, "x")
    params = p.params(severity, 480, 640, rng)
    out = p.apply(img, params, rng)
    documented = (0.03, 0.06, 0.10, 0.15, 0.21)[severity - 1]
    assert len(params["rects"]) == severity
    covered = float((out != img).any(axis=2).mean())
    assert covered == pytest.approx(documented, rel=0.1)
    outside = np.ones(img.shape[:2], bool)
    for x, y, w, h in params["rects"]:
        outside[y : y + h, x : x + w] = False
    np.testing.assert_array_equal(out[outside], img[outside])


def test_vignetting_darkens_corners_by_the_documented_amount_and_centre_not_at_all() -> None:
    grey = np.full((480, 640, 3), 200, np.uint8)
    for severity in SEVERITIES:
        out = perturb(grey, "vignetting", severity).astype(float) / 200
        strength = Vignetting.STRENGTH[severity - 1]
        assert out[0, 0].mean() == pytest.approx(1 - strength, abs=0.02)
        assert out[240, 320].mean() == pytest.approx(1.0, abs=0.01)
        # Brightness falls monotonically from the centre along the diagonal.
        diag = out[np.arange(240, 480, 10), np.arange(320, 640, 320 / 24).astype(int), 0]
        assert (np.diff(diag) <= 1e-9).all()


def test_chromatic_aberration_shifts_red_and_blue_radially_and_keeps_green() -> None:
    h, w = 480, 640
    img = np.zeros((h, w, 3), np.uint8)
    spots = [(60, 50), (580, 420), (320, 240)]
    for x, y in spots:
        img[y - 2 : y + 3, x - 2 : x + 3] = 255
    for severity in SEVERITIES:
        out = perturb(img, "chromatic_aberration", severity)
        np.testing.assert_array_equal(out[..., 1], img[..., 1])
        d = ChromaticAberration.SHIFT[severity - 1]
        centre = np.array([w / 2, h / 2])
        for x, y in spots:
            win = np.s_[y - 30 : y + 30, x - 30 : x + 30]
            offset = np.array([x - 30, y - 30])
            p = np.array([x + 0.5, y + 0.5])
            red = _centroid(out[win][..., 0]) + offset
            blue = _centroid(out[win][..., 2]) + offset
            np.testing.assert_allclose(red, centre + (1 + d) * (p - centre), atol=0.1)
            np.testing.assert_allclose(blue, centre + (1 - d) * (p - centre), atol=0.1)


def test_chromatic_aberration_on_a_photo_changes_the_edges_not_the_centre(assets: Path) -> None:
    img = _real(assets, 3)
    out = perturb(img, "chromatic_aberration", 5).astype(int)
    diff = np.abs(out - img)[..., [0, 2]].mean(axis=2)
    centre = diff[240:400, 240:400].mean()
    border = np.concatenate([diff[:60].ravel(), diff[-60:].ravel()]).mean()
    assert border > 4 * centre


def _dot_image(h: int, w: int, x: int, y: int) -> np.ndarray:
    img = np.zeros((h, w, 3), np.uint8)
    img[y - 1 : y + 2, x - 1 : x + 2] = 255
    return img


@pytest.mark.parametrize("severity", SEVERITIES)
def test_lens_distortion_moves_a_dot_exactly_where_map_points_says(severity: int) -> None:
    h, w = 480, 640
    p = LensDistortion()
    params = p.params(severity, h, w, np.random.default_rng())
    for x, y in [(30, 25), (610, 40), (320, 240), (100, 400), (600, 450), (330, 20)]:
        out = p.apply(_dot_image(h, w, x, y), params, np.random.default_rng())
        expected = p.map_points(np.array([[x + 0.5, y + 0.5]]), params, h, w)[0]
        if not (3 < expected[0] < w - 3 and 3 < expected[1] < h - 3):
            # Barrel distortion pushes content near the edge midpoints out of the frame.
            assert out.max() == 0, (x, y, expected)
            continue
        assert out.max() > 40, (x, y)
        win = np.s_[
            max(0, int(expected[1]) - 12) : int(expected[1]) + 12,
            max(0, int(expected[0]) - 12) : int(expected[0]) + 12,
        ]
        offset = np.array([win[1].start, win[0].start])
        found = _centroid(out[win][..., 0]) + offset
        np.testing.assert_allclose(found, expected, atol=1.0)


def test_lens_distortion_keeps_centre_and_corners_and_bows_edges_out() -> None:
    h, w = 480, 640
    p = LensDistortion()
    for severity in SEVERITIES:
        params = p.params(severity, h, w, np.random.default_rng())
        fixed = np.array([[320.0, 240.0], [0, 0], [640, 0], [640, 480], [0, 480]])
        np.testing.assert_allclose(p.map_points(fixed, params, h, w), fixed, atol=1e-9)
        # Barrel: edge midpoints leave the frame, the centre is magnified.
        mid = p.map_points(np.array([[0.0, 240.0], [320.0, 0.0]]), params, h, w)
        assert mid[0, 0] < 0
        assert mid[1, 1] < 0
        near = p.map_points(np.array([[330.0, 240.0]]), params, h, w)
        assert near[0, 0] - 320 > 10


def test_lens_distortion_boxes_still_contain_their_object() -> None:
    h, w = 480, 640
    p = LensDistortion()
    for severity in SEVERITIES:
        for x, y in [(40, 40), (600, 60), (200, 300), (620, 440), (320, 30)]:
            img = _dot_image(h, w, x, y)
            box = np.array([[x - 8, y - 8, x + 9, y + 9]], np.float64)
            out, boxes = perturb(img, "lens_distortion", severity, boxes=box)
            if len(boxes) == 0:  # pushed (mostly) out of the frame with its object
                assert out[..., 0].max() < 128
                continue
            bx1, by1, bx2, by2 = boxes[0]
            ys, xs = np.nonzero(out[..., 0] > 64)
            # Lit pixels (covering [i, i + 1)) inside the box, give or take a pixel of blur.
            assert xs.min() >= bx1 - 1, (severity, x, y)
            assert xs.max() + 1 <= bx2 + 1, (severity, x, y)
            assert ys.min() >= by1 - 1, (severity, x, y)
            assert ys.max() + 1 <= by2 + 1, (severity, x, y)
    # The same transform as through the public helper.
    params = p.params(3, h, w, np.random.default_rng())
    moved, kept = transform_boxes(p, np.array([[300, 220, 340, 260]]), params, h, w)
    assert kept.all()
    # Magnified about the centre.
    assert moved[0, 0] < 300
    assert moved[0, 2] > 340


# --- size -------------------------------------------------------------------------------

# Spatial parameters follow the short side, so the same scene at two sizes must look alike
# at the same display size: compare both at the smaller size. (1 - SSIM) at each image's own
# resolution is not a measure of that: SSIM's window is a fixed 11 pixels, so the larger
# image is judged on finer detail than the smaller one has.
SCALE_INVARIANT = [
    "downscale", "pixel_dropout", "cutout", "dirty_lens", "vignetting",
    "chromatic_aberration", "lens_distortion",
]  # fmt: skip


def _effect_at(small: np.ndarray, name: str, big: np.ndarray, severity: int) -> tuple[float, float]:
    sz = (small.shape[1], small.shape[0])
    a = 1 - ssim(small, perturb(small, name, severity, sample_id="s"))
    b_out = cv2.resize(
        perturb(big, name, severity, sample_id="s"), sz, interpolation=cv2.INTER_AREA
    )
    b = 1 - ssim(small, b_out)
    return a, b


@pytest.mark.parametrize("name", SCALE_INVARIANT)
def test_same_severity_looks_alike_at_320_and_640(name: str, assets: Path) -> None:
    for index in (0, 56):
        big = _real(assets, index)
        small = cv2.resize(big, (320, 320), interpolation=cv2.INTER_AREA)
        for severity in SEVERITIES:
            a, b = _effect_at(small, name, big, severity)
            assert abs(a - b) < 0.05, (name, index, severity, a, b)


@pytest.mark.parametrize("name", ["pixelate", "elastic_transform"])
def test_imagenet_c_spatial_ones_look_alike_at_640_and_1280(name: str, assets: Path) -> None:
    # Up to a short side of 480 they are exactly imagecorruptions (COCO-C); above, they scale.
    small = _real(assets, 56)
    big = cv2.resize(small, (1280, 1280), interpolation=cv2.INTER_CUBIC)
    for severity in SEVERITIES:
        a, b = _effect_at(small, name, big, severity)
        assert abs(a - b) < 0.05, (name, severity, a, b)
