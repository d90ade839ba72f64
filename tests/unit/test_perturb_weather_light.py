"""Weather and light perturbations do what they say, beyond the shared contract.

Light: brightness, exposure, contrast, tone curve, hue, white balance and colour loss move
the measurable quantity they name, in the stated direction. Weather: fog lowers contrast,
the overlays (frost, snow, rain, spatter, glare) add seed-dependent content of the right
kind, frost reads no image file, and a 320 and a 640 copy of an image come out alike.
"""

from __future__ import annotations

import builtins
import inspect
import itertools
import json
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest

from brittle.perturbations import get_perturbation, perturb, rng_for
from brittle.perturbations import light as light_mod
from brittle.perturbations import weather as weather_mod
from brittle.perturbations.quality import ssim

WEATHER = ["fog", "frost", "snow", "rain", "spatter", "sun_glare"]
LIGHT = [
    "brightness", "low_light", "contrast", "gamma", "saturate", "hue_shift",
    "color_temperature", "grayscale", "overexposure",
]  # fmt: skip
SEVERITIES = (1, 2, 3, 4, 5)
BT601 = np.array([0.299, 0.587, 0.114])


def _luma(image: np.ndarray) -> np.ndarray:
    return image.astype(np.float64) @ BT601


def _scene(h: int = 240, w: int = 320) -> np.ndarray:
    """Gradients, saturated patches, fine texture and a flat dark region."""
    rng = np.random.default_rng(5)
    yy, xx = np.mgrid[0:h, 0:w]
    img = np.stack([xx * 200 / w + 30, yy * 180 / h + 40, (xx + yy) * 100 / (h + w) + 90], 2)
    img += cv2.GaussianBlur(rng.normal(0, 1, (h, w, 3)), (0, 0), 1.5) * 25
    img = img.astype(np.float32)
    cv2.rectangle(img, (20, 20), (100, 90), (230, 40, 30), -1)
    cv2.rectangle(img, (130, 30), (200, 100), (30, 60, 220), -1)
    cv2.circle(img, (260, 170), 40, (240, 210, 40), -1)
    cv2.rectangle(img, (20, 150), (120, 220), (40, 40, 40), -1)  # flat dark patch
    return np.clip(img, 0, 255).astype(np.uint8)


def _run(name: str, image: np.ndarray, severity: int, seed: int = 0, **override: Any):
    """(output, params) with optional parameter overrides (e.g. a fixed direction)."""
    p = get_perturbation(name)
    rng = rng_for(seed, name, severity, "t")
    params = p.params(severity, *image.shape[:2], rng)
    params.update(override)
    return p.apply(image, params, rng), params


def _real(assets: Path, n: int = 3) -> list[np.ndarray]:
    files = sorted((assets / "css-valid" / "images").glob("*.jpg"))[:: max(1, 114 // n)][:n]
    return [cv2.cvtColor(cv2.imread(str(f)), cv2.COLOR_BGR2RGB) for f in files]


# --------------------------------------------------------------------------- catalogue


def test_families_and_imagenet_c_flags() -> None:
    for name in WEATHER:
        assert get_perturbation(name).family == "weather"
    for name in LIGHT:
        assert get_perturbation(name).family == "light"
    flags = {n: get_perturbation(n).imagenet_c for n in WEATHER + LIGHT}
    assert {n for n, f in flags.items() if f == "common"} == {
        "fog", "frost", "snow", "brightness", "contrast",
    }  # fmt: skip
    assert {n for n, f in flags.items() if f == "validation"} == {"spatter", "saturate"}
    for name in ["brightness", "contrast", "saturate", "grayscale", "overexposure"]:
        assert get_perturbation(name).random is False, name


@pytest.mark.parametrize("name", WEATHER + LIGHT)
def test_any_size_and_json_params(name: str) -> None:
    """Odd, tiny and portrait sizes work; params are plain JSON."""
    for h, w in ((1, 1), (7, 5), (33, 90), (90, 33)):
        img = np.random.default_rng(h * w).integers(0, 256, (h, w, 3), dtype=np.uint8)
        for s in (1, 5):
            out, params = _run(name, img, s)
            assert out.shape == img.shape
            assert out.dtype == np.uint8
            assert out.flags.c_contiguous
            assert json.loads(json.dumps(params)) == params


# --------------------------------------------------------------------------- light


def test_brightness_raises_mean_luma_monotonically_and_keeps_hue() -> None:
    img = _scene()
    means = [_luma(img).mean()] + [_luma(_run("brightness", img, s)[0]).mean() for s in SEVERITIES]
    assert all(a < b for a, b in itertools.pairwise(means)), means
    out, params = _run("brightness", img, 3)
    # HSV V rises by the shift (clipped at 255) while channel ratios are kept.
    v, v2 = img.max(2).astype(float), out.max(2).astype(float)
    np.testing.assert_allclose(v2, np.minimum(v + params["shift"] * 255, 255), atol=1.01)
    black = _run("brightness", np.zeros((4, 4, 3), np.uint8), 2)[0]
    assert (black == round(0.2 * 255)).all()


def test_contrast_reduces_std_towards_the_mean() -> None:
    img = _scene()
    stds = [img.std()] + [_run("contrast", img, s)[0].astype(float).std() for s in SEVERITIES]
    assert all(a > b for a, b in itertools.pairwise(stds)), stds
    out, params = _run("contrast", img, 1)
    assert out.std() == pytest.approx(img.std() * params["factor"], rel=0.05)
    np.testing.assert_allclose(out.mean((0, 1)), img.mean((0, 1)), atol=1.0)


@pytest.mark.parametrize("severity", SEVERITIES)
def test_gamma_maps_mid_grey_as_predicted(severity: int) -> None:
    grey = np.full((8, 8, 3), 128, np.uint8)
    for seed in range(6):  # both directions get drawn
        out, params = _run("gamma", grey, severity, seed)
        g = params["gamma"]
        assert out[0, 0, 0] == round(255 * (128 / 255) ** g)
        assert (out[0, 0, 0] < 128) == (g > 1)
    ends = np.array([[[0, 0, 0], [255, 255, 255]]], np.uint8)
    np.testing.assert_array_equal(_run("gamma", ends, severity)[0], ends)


def test_gamma_draws_both_directions() -> None:
    gammas = {_run("gamma", _scene(), 3, seed)[1]["gamma"] > 1 for seed in range(12)}
    assert gammas == {True, False}


def test_low_light_darkens_and_adds_noise_in_flat_dark_areas() -> None:
    img = _scene()
    flat = (slice(160, 210), slice(30, 110))  # inside the flat dark patch
    assert img[flat].std() == 0
    prev_mean = _luma(img).mean()
    for s in SEVERITIES:
        out, _ = _run("low_light", img, s)
        assert _luma(out).mean() < prev_mean, s
        prev_mean = _luma(out).mean()
        patch = out[flat].astype(np.float64)
        local_var = float(cv2.blur((patch - cv2.blur(patch, (5, 5))) ** 2, (5, 5)).mean())
        assert local_var > 1.0, (s, local_var)
    # Noise grows as the light falls: relative noise of a mid-grey patch.
    grey = np.full((64, 64, 3), 128, np.uint8)
    rel = []
    for s in SEVERITIES:
        out = _run("low_light", grey, s)[0].astype(float)
        rel.append(out.std() / out.mean())
    assert all(a < b for a, b in itertools.pairwise(rel)), rel


def test_low_light_casts_a_colour() -> None:
    grey = np.full((32, 32, 3), 160, np.uint8)
    sodium = _run("low_light", grey, 5, tint="sodium")[0].mean((0, 1))
    cool = _run("low_light", grey, 5, tint="cool")[0].mean((0, 1))
    assert sodium[0] > sodium[2] + 10  # orange: red over blue
    assert cool[2] > cool[0] + 5


def test_saturate_follows_imagenet_c_and_keeps_grey_grey() -> None:
    img = _scene()

    def sat(x: np.ndarray) -> float:
        v = x.max(2).astype(float)
        return float(np.mean((v - x.min(2)) / np.maximum(v, 1)))

    s0 = sat(img)
    outs = {s: _run("saturate", img, s)[0] for s in SEVERITIES}
    assert sat(outs[2]) < sat(outs[1]) < s0 < sat(outs[3]) < sat(outs[4]) < sat(outs[5])
    # Hue and value are kept: V unchanged.
    for out in outs.values():
        np.testing.assert_allclose(out.max(2), img.max(2), atol=1)
    grey = np.full((4, 4, 3), 90, np.uint8)
    np.testing.assert_array_equal(_run("saturate", grey, 5)[0], grey)


@pytest.mark.parametrize("severity", SEVERITIES)
def test_hue_shift_preserves_value_and_saturation(severity: int) -> None:
    img = _scene()
    out, params = _run("hue_shift", img, severity)
    assert abs(params["degrees"]) > 0
    np.testing.assert_allclose(out.max(2), img.max(2), atol=1)
    hsv0 = cv2.cvtColor(img.astype(np.float32) / 255, cv2.COLOR_RGB2HSV)
    hsv1 = cv2.cvtColor(out.astype(np.float32) / 255, cv2.COLOR_RGB2HSV)
    coloured = (hsv0[..., 1] > 0.4) & (hsv0[..., 2] > 0.3)
    # Saturation is kept up to the rounding of the rotated channels to uint8.
    np.testing.assert_allclose(hsv1[..., 1][coloured], hsv0[..., 1][coloured], atol=0.04)
    turn = (hsv1[..., 0] - hsv0[..., 0] + 180) % 360 - 180
    assert np.median(turn[coloured]) == pytest.approx(params["degrees"], abs=1.5)


@pytest.mark.parametrize("severity", SEVERITIES)
def test_color_temperature_moves_red_blue_ratio_in_the_drawn_direction(severity: int) -> None:
    img = _scene()
    r0, b0 = img[..., 0].mean(), img[..., 2].mean()
    seen = set()
    for seed in range(8):
        out, params = _run("color_temperature", img, severity, seed)
        ratio = out[..., 0].mean() / out[..., 2].mean()
        seen.add(params["direction"])
        if params["direction"] == "warm":
            assert ratio > r0 / b0 * 1.05
        else:
            assert ratio < r0 / b0 / 1.05
        np.testing.assert_allclose(out[..., 1], img[..., 1], atol=1)  # green fixed
    assert seen == {"warm", "cool"}
    # Boosted channels roll off instead of clipping: white keeps full scale there.
    white = np.full((2, 2, 3), 255, np.uint8)
    out, params = _run("color_temperature", white, severity)
    boosted = int(np.argmax(params["gains"]))
    assert (out[..., boosted] == 255).all()
    assert (out[..., 1] == 255).all()


def test_color_temperature_gains_follow_the_black_body() -> None:
    assert light_mod.wb_gains(6500.0) == pytest.approx([1.0, 1.0, 1.0])
    warm = light_mod.wb_gains(3000.0)
    cool = light_mod.wb_gains(12000.0)
    assert warm[0] > 1.5
    assert warm[2] < 0.5
    assert cool[0] < 1
    assert cool[2] > 1


def test_grayscale_grades_to_equal_channels() -> None:
    img = _scene()
    spreads = [float((img.max(2) - img.min(2)).mean())]
    for s in SEVERITIES:
        out = _run("grayscale", img, s)[0].astype(int)
        spreads.append(float((out.max(2) - out.min(2)).mean()))
    assert all(a > b for a, b in itertools.pairwise(spreads)), spreads
    out = _run("grayscale", img, 5)[0].astype(int)
    assert np.abs(out - out[..., :1]).max() <= 1
    np.testing.assert_allclose(out[..., 0], img.astype(float).mean(2), atol=1)


def test_overexposure_clips_more_with_severity_and_blooms() -> None:
    img = _scene()
    clipped = [float((img == 255).mean())]
    for s in SEVERITIES:
        clipped.append(float((_run("overexposure", img, s)[0] == 255).mean()))
    assert all(a < b for a, b in itertools.pairwise(clipped)), clipped
    # Bloom: light spills past the edge of a bright disk onto a dark background.
    disk = np.full((200, 200, 3), 30, np.uint8)
    cv2.circle(disk, (100, 100), 30, (250, 250, 250), -1)
    exposed, _ = _run("overexposure", disk, 5, bloom=0.0)
    bloomed, _ = _run("overexposure", disk, 5)
    ring = (slice(100, 101), slice(135, 145))  # just outside the disk
    assert bloomed[ring].mean() > exposed[ring].mean() + 3


# --------------------------------------------------------------------------- weather


def _detail(image: np.ndarray) -> np.ndarray:
    """Local contrast: luma minus its local mean (the smooth haze itself has little)."""
    y = _luma(image)
    return np.abs(y - cv2.GaussianBlur(y, (0, 0), 2))


def test_fog_is_a_global_haze_that_lowers_contrast() -> None:
    img = _scene()
    darker = img.copy()
    patch = (slice(150, 220), slice(20, 120))  # flat dark patch, away from the maximum
    darker[patch] -= 30
    prev = 1.0
    for s in SEVERITIES:
        # Same seed, same haze: the difference left between the two images is the
        # scene's own contrast, scaled by max / (max + t) (ImageNet-C's compression).
        a, params = _run("fog", img, s)
        b, _ = _run("fog", darker, s)
        kept = float((a[patch].astype(float) - b[patch]).mean()) / 30
        top = img.max() / 255
        assert kept == pytest.approx(top / (top + params["strength"]), abs=0.02)
        assert kept < prev
        prev = kept
    # The haze covers the whole frame: every quarter loses detail.
    out = _run("fog", img, 3)[0]
    for qy, qx in itertools.product((0, 1), (0, 1)):
        q = (slice(qy * 120, qy * 120 + 120), slice(qx * 160, qx * 160 + 160))
        assert _detail(out[q]).mean() < 0.6 * _detail(img[q]).mean()


def test_plasma_fractal_is_normalised_and_rougher_for_lower_decay() -> None:
    rng = np.random.default_rng(0)
    smooth = weather_mod._plasma(rng, 256, 2.0)
    rough = weather_mod._plasma(rng, 256, 1.4)
    for f in (smooth, rough):
        assert f.shape == (256, 256)
        assert f.dtype == np.float32
        assert f.min() == 0.0
        assert f.max() == pytest.approx(1.0)

    def fine(f: np.ndarray) -> float:
        return float(np.abs(np.diff(f, axis=1)).mean())

    assert fine(rough) > 2 * fine(smooth)


@pytest.mark.parametrize("name", ["frost", "snow", "rain", "spatter", "sun_glare"])
def test_overlays_add_content_that_depends_on_the_seed(name: str) -> None:
    img = _scene()
    a = _run(name, img, 3, seed=1)[0].astype(int)
    b = _run(name, img, 3, seed=2)[0].astype(int)
    assert np.abs(a - img).mean() > 2, name
    assert np.abs(a - b).mean() > 1, name  # different flakes / streaks / drops / light


@pytest.mark.parametrize("name", ["frost", "snow"])
def test_white_overlays_brighten_a_dark_scene(name: str) -> None:
    dark = np.full((200, 300, 3), 40, np.uint8)
    means = [_luma(_run(name, dark, s)[0]).mean() for s in SEVERITIES]
    assert all(m > 45 for m in means), means
    out = _run(name, dark, 5)[0].astype(float)
    assert out.std() > 5  # structure (crystals, flakes), not a flat lift


@pytest.mark.parametrize("severity", SEVERITIES)
def test_frost_mixes_imagenet_c_weights_with_bluish_ice(severity: int) -> None:
    lo, hi = np.full((160, 160, 3), 20, np.uint8), np.full((160, 160, 3), 120, np.uint8)
    a, params = _run("frost", lo, severity)
    b, _ = _run("frost", hi, severity)  # same seed, same ice
    weight = float((b.astype(float) - a).mean()) / 100
    assert weight == pytest.approx(params["image_weight"], abs=0.02)
    ice = (a.astype(float) - params["image_weight"] * 20) / params["frost_weight"]
    m = ice.mean((0, 1))
    assert m[2] > m[1] > m[0] > 40  # bluish white
    assert ice[..., 2].std() > 10  # crystals, not a uniform veil


def test_frost_reads_no_file(monkeypatch: pytest.MonkeyPatch) -> None:
    source = inspect.getsource(weather_mod)
    for word in ("imread", "open(", "resource_filename", ".png", ".jpg"):
        assert word not in source, word

    def refuse(*args: Any, **kwargs: Any) -> None:
        raise AssertionError(f"frost tried to read a file: {args}")

    monkeypatch.setattr(cv2, "imread", refuse)
    monkeypatch.setattr(builtins, "open", refuse)
    out = perturb(_scene(), "frost", 5, seed=3)
    assert out.shape == (240, 320, 3)


def test_snow_whitens_and_falls() -> None:
    img = _scene()
    out, params = _run("snow", img, 5)
    assert -135 <= params["angle"] <= -45
    assert _luma(out).mean() > _luma(img).mean() + 20
    # The flakes are streaked: more correlation along the fall direction than across it.
    layer, _ = _run("snow", np.zeros((224, 224, 3), np.uint8), 1, angle=-90.0)
    g = layer[..., 0].astype(float) - layer[..., 0].mean()
    along = float((g[1:, :] * g[:-1, :]).mean())
    across = float((g[:, 1:] * g[:, :-1]).mean())
    assert along > across


def test_rain_streaks_follow_the_drawn_angle() -> None:
    black = np.zeros((240, 240, 3), np.uint8)
    vertical, _ = _run("rain", black, 4, angle=0.0)
    assert (vertical[..., 0] > 40).mean() > 0.01  # bright streaks
    g = vertical[..., 0].astype(float) - vertical[..., 0].mean()
    along = float((g[2:, :] * g[:-2, :]).mean())
    across = float((g[:, 2:] * g[:, :-2]).mean())
    assert along > 2 * across
    img = _scene()
    dims = [_luma(_run("rain", img, s, alpha=0.0)[0]).std() for s in SEVERITIES]
    assert all(a > b for a, b in itertools.pairwise(dims)), dims  # hazier, dimmer


def test_spatter_water_then_mud() -> None:
    img = np.full((224, 224, 3), 128, np.uint8)
    water, p1 = _run("spatter", img, 2)
    mud, p5 = _run("spatter", img, 5)
    assert p1["kind"] == "water"
    assert p5["kind"] == "mud"
    assert (water.astype(int) >= 128).all()  # water adds light
    brown = (mud[..., 0] > mud[..., 2] + 20) & (mud[..., 0] < 100)
    assert 0.05 < brown.mean() < 0.9


def test_sun_glare_is_brightest_at_the_drawn_source() -> None:
    img = _scene()
    out, params = _run("sun_glare", img, 4)
    diff = _luma(out) - _luma(img)
    y, x = np.unravel_index(np.argmax(cv2.GaussianBlur(diff, (0, 0), 5)), diff.shape)
    assert abs(x - params["x"] * 320) < 25
    assert abs(y - params["y"] * 240) < 25
    assert diff.min() >= -1  # glare only adds light
    dark = np.zeros((100, 100, 3), np.uint8)
    assert _run("sun_glare", dark, 5)[0].min() > 0  # veiling glare lifts the blacks


# --------------------------------------------------------------------------- size


@pytest.mark.parametrize("name", [*WEATHER, "overexposure"])
def test_a_320_and_a_640_copy_look_alike(name: str, assets: Path) -> None:
    """Spatial parameters follow the short side: perturbing a 640 image and shrinking it
    gives what perturbing the 320 copy gives. Both are compared with the clean 320 image,
    because SSIM's 11-pixel window sees a 640 image's edges at half the relative width
    (measured at native sizes the SSIMs differ by up to 0.1 for drop-like overlays, see
    docs/perturbations/weather.md)."""
    diffs = []
    for i, big in enumerate(_real(assets)):
        big = cv2.resize(big, (640, 640), interpolation=cv2.INTER_AREA)
        small = cv2.resize(big, (320, 320), interpolation=cv2.INTER_AREA)
        for s in (1, 3, 5):
            a = ssim(small, perturb(small, name, s, seed=0, sample_id=str(i)))
            shrunk = cv2.resize(
                perturb(big, name, s, seed=0, sample_id=str(i)), (320, 320),
                interpolation=cv2.INTER_AREA,
            )  # fmt: skip
            diffs.append(abs(a - ssim(small, shrunk)))
    assert max(diffs) < 0.03, (name, np.round(diffs, 3))
