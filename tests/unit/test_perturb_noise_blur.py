"""Noise and blur perturbations do what they say, beyond the shared contract.

Noise: the right amount, the right distribution, the right dependence on intensity.
Blur: sharpness falls with severity, kernels have the right shape and direction, the
vectorised glass blur matches ImageNet-C's sequential one, and a large and a small copy of
an image look alike at the same severity.
"""

from __future__ import annotations

import itertools
import json
import math
from pathlib import Path

import cv2
import numpy as np
import pytest

from brittle.perturbations import get_perturbation, perturb, rng_for
from brittle.perturbations.blur import (
    REFERENCE_SIDE,
    DefocusBlur,
    GlassBlur,
    MotionBlur,
    disk_kernel,
    motion_taps,
)
from brittle.perturbations.noise import grain_noise, standard_normal
from brittle.perturbations.quality import ssim

NOISES = ["gaussian_noise", "shot_noise", "impulse_noise", "speckle_noise", "iso_noise"]
BLURS = ["gaussian_blur", "defocus_blur", "motion_blur", "zoom_blur", "glass_blur", "median_blur"]


def _flat(value: int, h: int = 256, w: int = 256) -> np.ndarray:
    return np.full((h, w, 3), value, np.uint8)


def _apply(name: str, image: np.ndarray, severity: int, seed: int = 0, **override: object):
    p = get_perturbation(name)
    rng = rng_for(seed, name, severity, "t")
    params = p.params(severity, *image.shape[:2], rng)
    params.update(override)
    return p.apply(image, params, rng)


def _textured(h: int = 320, w: int = 320) -> np.ndarray:
    """Detail at every scale: smoothed noise, edges and a few lines."""
    rng = np.random.default_rng(3)
    img = np.zeros((h, w, 3), np.float32)
    for sigma, amp in ((0.7, 40.0), (3.0, 50.0), (12.0, 60.0)):
        img += cv2.GaussianBlur(rng.normal(0, 1, (h, w, 3)).astype(np.float32), (0, 0), sigma) * (
            amp * sigma
        )
    img += 128
    cv2.rectangle(img, (40, 40), (140, 120), (240, 40, 30), -1)
    cv2.circle(img, (220, 200), 50, (20, 200, 60), -1)
    cv2.line(img, (0, 300), (320, 260), (255, 255, 255), 2)
    return np.clip(img, 0, 255).astype(np.uint8)


def _laplacian_var(image: np.ndarray) -> float:
    gray = cv2.cvtColor(image, cv2.COLOR_RGB2GRAY)
    return float(cv2.Laplacian(gray.astype(np.float32), cv2.CV_32F).var())


def _real(assets: Path, n: int = 3) -> list[np.ndarray]:
    files = sorted((assets / "css-valid" / "images").glob("*.jpg"))[5::37][:n]
    return [cv2.cvtColor(cv2.imread(str(f)), cv2.COLOR_BGR2RGB) for f in files]


# ---------------------------------------------------------------------------------- noise


def test_standard_normal_lookup_is_a_unit_normal() -> None:
    z = standard_normal(np.random.default_rng(0), (400_000,)).astype(np.float64)
    assert abs(z.mean()) < 0.01
    assert abs(z.std() - 1) < 0.01
    assert abs(np.mean(np.abs(z) < 1) - 0.6827) < 0.005
    assert abs(np.mean(z**4) / np.mean(z**2) ** 2 - 3) < 0.1


@pytest.mark.parametrize("severity", [1, 2, 3])
def test_gaussian_noise_has_the_published_sigma(severity: int) -> None:
    sigma = (0.08, 0.12, 0.18)[severity - 1]
    img = _flat(128)
    out = _apply("gaussian_noise", img, severity)
    resid = out.astype(np.float64) - 128
    assert abs(resid.std() - sigma * 255) < 0.03 * sigma * 255
    assert abs(resid.mean()) < 0.5
    # Gaussian, not uniform: about 68% within one sigma.
    assert abs(np.mean(np.abs(resid) <= sigma * 255) - 0.683) < 0.02


def test_noise_is_per_pixel_and_per_channel_whatever_the_size() -> None:
    # ImageNet-C noise is independent per value: neighbours and channels uncorrelated,
    # and the per-pixel std does not depend on the image size.
    stds = []
    for h, w in ((96, 128), (480, 640)):
        resid = _apply("gaussian_noise", _flat(128, h, w), 1).astype(np.float64) - 128
        stds.append(resid.std())
        assert abs(np.corrcoef(resid[:, :-1, 0].ravel(), resid[:, 1:, 0].ravel())[0, 1]) < 0.05
        assert abs(np.corrcoef(resid[..., 0].ravel(), resid[..., 1].ravel())[0, 1]) < 0.05
    assert abs(stds[0] - stds[1]) < 0.5


def test_shot_noise_variance_grows_with_intensity_as_poisson() -> None:
    photons = 60.0
    levels = (16, 64, 160)
    img = np.concatenate([_flat(v, 128, 256) for v in levels], axis=0)
    out = _apply("shot_noise", img, 1).astype(np.float64)
    for i, v in enumerate(levels):
        band = out[i * 128 : (i + 1) * 128]
        # Poisson(x * photons) / photons has variance x / photons (x in 0..1).
        expected = math.sqrt(v / 255 / photons) * 255
        assert abs(band.std() - expected) < 0.05 * expected, v
        assert abs(band.mean() - v) < 1.0, v


def test_shot_noise_at_three_photons_has_four_levels() -> None:
    out = _apply("shot_noise", _textured(), 5)
    assert set(np.unique(out).tolist()) <= {0, 85, 170, 255}


def test_shot_noise_keeps_black_black() -> None:
    assert not _apply("shot_noise", _flat(0), 5).any()


@pytest.mark.parametrize("severity", [1, 3, 5])
def test_impulse_noise_hits_the_published_fraction(severity: int) -> None:
    amount = (0.03, 0.06, 0.09, 0.17, 0.27)[severity - 1]
    img = _flat(128, 300, 300)
    out = _apply("impulse_noise", img, severity)
    salt, pepper = np.mean(out == 255), np.mean(out == 0)
    assert abs(salt + pepper - amount) < 0.1 * amount
    assert abs(salt - pepper) < 0.15 * amount
    # Everything else is untouched.
    assert np.all((out == 128) | (out == 0) | (out == 255))


def test_speckle_noise_is_multiplicative() -> None:
    assert not _apply("speckle_noise", _flat(0), 5).any()
    img = np.concatenate([_flat(40, 128, 256), _flat(80, 128, 256)], axis=0)
    out = _apply("speckle_noise", img, 1).astype(np.float64)
    dark, bright = out[:128].std(), out[128:].std()
    assert abs(dark - 40 * 0.15) < 0.5
    assert abs(bright / dark - 2.0) < 0.1


def test_iso_noise_has_blotchy_colour_noise() -> None:
    img = _flat(128, 640, 640)
    out = _apply("iso_noise", img, 4).astype(np.float64) - 128
    r, g, b = out[..., 0], out[..., 1], out[..., 2]
    # Chroma noise: the channels move differently.
    assert np.corrcoef(r.ravel(), b.ravel())[0, 1] < 0.8
    chroma = r - g
    luma = out.mean(axis=2)
    assert chroma.std() > 5

    def lag_corr(a: np.ndarray, lag: int) -> float:
        return float(np.corrcoef(a[:, :-lag].ravel(), a[:, lag:].ravel())[0, 1])

    # Colour blotches are a few pixels wide; luminance grain is about a pixel.
    assert lag_corr(chroma, 2) > 0.5
    assert lag_corr(chroma, 2) > lag_corr(luma, 2) + 0.2


def test_iso_noise_is_stronger_in_the_shadows() -> None:
    img = np.concatenate([_flat(30, 128, 256), _flat(220, 128, 256)], axis=0)
    out = _apply("iso_noise", img, 3).astype(np.float64)
    assert out[:128].std() > 1.15 * out[128:].std()


def test_grain_noise_bins_below_a_pixel() -> None:
    rng = np.random.default_rng(0)
    fine = grain_noise(rng, 200, 200, 0.5)
    coarse = grain_noise(rng, 200, 200, 4.0)
    assert abs(fine.std() - 0.5) < 0.02  # four cells per pixel average to half the std
    assert abs(coarse.std() - 1.0) < 0.02


# ---------------------------------------------------------------------------------- blur


@pytest.mark.parametrize("name", BLURS)
def test_blur_reduces_sharpness_monotonically(name: str) -> None:
    img = _textured()
    sharp = [_laplacian_var(img)]
    sharp += [_laplacian_var(perturb(img, name, s, seed=1)) for s in range(1, 6)]
    assert all(a > b for a, b in itertools.pairwise(sharp)), (name, sharp)


def test_blur_constants_are_imagenet_c_at_the_reference_size() -> None:
    h, w = REFERENCE_SIDE, 640
    rng = np.random.default_rng(0)
    gb = get_perturbation("gaussian_blur")
    assert [gb.params(s, h, w, rng)["sigma_px"] for s in range(1, 6)] == [1, 2, 3, 4, 6]
    db = DefocusBlur()
    assert [db.params(s, h, w, rng)["radius_px"] for s in range(1, 6)] == [3, 4, 6, 8, 10]
    mb = MotionBlur()
    got = [(mb.params(s, h, w, rng)["radius_px"], mb.params(s, h, w, rng)["sigma_px"])
           for s in range(1, 6)]  # fmt: skip
    assert got == [(10, 3), (15, 5), (15, 8), (15, 12), (20, 15)]
    # Twice the short side, twice the pixels.
    assert gb.params(5, 2 * h, 2 * w, rng)["sigma_px"] == 12


def test_defocus_kernel_is_a_disk() -> None:
    k = disk_kernel(6.0, 0.0)
    assert k.shape == (13, 13)
    assert abs(float(k.sum()) - 1) < 1e-5
    yy, xx = np.mgrid[-6:7, -6:7]
    r = np.hypot(yy, xx)
    inside = k[r <= 5.3]
    assert np.ptp(inside) < 1e-7  # flat inside
    assert float(k[r >= 6.8].max()) == 0.0  # nothing outside
    np.testing.assert_allclose(k, k.T, atol=1e-7)
    np.testing.assert_allclose(k, k[::-1], atol=1e-7)


def test_defocus_spreads_a_point_into_a_disk() -> None:
    img = np.zeros((61, 61, 3), np.uint8)
    img[30, 30] = 255
    # Radius under WORK_RADIUS: applied at full resolution.
    out = DefocusBlur().apply(img, {"radius_px": 2.5, "alias_blur_px": 0.0}, None)[..., 0]
    yy, xx = np.nonzero(out)
    r = np.hypot(yy - 30, xx - 30)
    assert r.max() <= 3.3
    assert abs(int(out.sum()) - 255) <= 12


def test_motion_taps_sum_to_one_and_decay() -> None:
    for radius, sigma, angle in ((10, 3, 0.0), (15, 8, 30.0), (20, 15, -45.0)):
        w, j = motion_taps(radius, sigma, angle)
        assert abs(float(w.sum()) - 1) < 1e-6
        assert np.all(np.diff(w) < 0)
        # Cut at 2 * radius (or 4 sigma) along the line, whatever the angle.
        reach = j[-1] / math.cos(math.radians(angle))
        assert reach <= min(2 * radius, 4 * sigma) + 1e-9
        assert reach > min(2 * radius, 4 * sigma) - 1.5


@pytest.mark.parametrize("angle", [-40.0, -10.0, 0.0, 25.0, 45.0])
def test_motion_blur_streaks_a_point_along_its_angle(angle: float) -> None:
    img = np.zeros((101, 101, 3), np.uint8)
    img[50, 50] = 255
    out = MotionBlur().apply(img, {"radius_px": 15.0, "sigma_px": 8.0, "angle": angle}, None)
    v = out[..., 0].astype(np.float64)
    assert abs(v.sum() - 255) < 0.04 * 255  # the kernel sums to 1
    yy, xx = np.nonzero(v > 0)
    wts = v[yy, xx]
    dy, dx = yy - 50, xx - 50
    # The streak trails the point on one side (out(p) reads p + t * direction, t >= 0).
    my, mx = np.average(dy, weights=wts), np.average(dx, weights=wts)
    assert mx < -3
    direction = math.degrees(math.atan2(-my, -mx))
    assert abs(direction - angle) < 4, (direction, angle)
    # Thin: spread across the motion is about a pixel.
    c, s = math.cos(math.radians(angle)), math.sin(math.radians(angle))
    across = -dx * s + dy * c
    assert math.sqrt(np.average(across**2, weights=wts)) < 1.0


def test_motion_blur_keeps_lines_along_the_motion_sharp() -> None:
    img = np.zeros((80, 120, 3), np.uint8)
    img[40, :] = 255  # horizontal line
    img[:, 60] = 255  # vertical line
    out = MotionBlur().apply(img, {"radius_px": 15.0, "sigma_px": 8.0, "angle": 0.0}, None)
    v = out[..., 0]
    assert np.all(v[40, :] == 255)  # still a full-intensity line
    assert not v[38:40, :25].any()  # and still one pixel thick
    assert not v[41:43, :25].any()
    assert v[10, 60] < 80  # the vertical line is smeared sideways
    assert v[10, 50:60].min() > 0


def test_zoom_blur_keeps_the_centre_and_blurs_the_edges() -> None:
    img = _textured(321, 321)
    out = perturb(img, "zoom_blur", 3)
    diff = np.abs(out.astype(np.int16) - img).mean(axis=2)
    assert diff[150:171, 150:171].mean() < 0.25 * diff[:40, :40].mean()


def test_median_blur_removes_specks_and_keeps_edges() -> None:
    img = np.zeros((640, 640, 3), np.uint8)
    img[:, 320:] = 200
    specks = np.random.default_rng(0).random((640, 640)) < 0.02
    img[specks & (np.arange(640) < 300)[None, :]] = 255
    out = perturb(img, "median_blur", 1)
    assert out[:, :300].max() == 0  # isolated specks gone
    assert np.all(out[:, 320:] == 200)  # the edge is still a step
    assert np.all(out[:, 302:320] == 0)


def _sequential_glass(image: np.ndarray, sigma: float, dist: int, sweeps: int, seed: int):
    """ImageNet-C's glass blur as published: blur, sweep swapping pixels, blur."""
    x = cv2.GaussianBlur(image, (0, 0), sigma)
    h, w = x.shape[:2]
    rng = np.random.default_rng(seed)
    for _ in range(sweeps):
        moves = rng.integers(-dist, dist, size=(h, w, 2))
        for y in range(h - dist, dist, -1):
            for xx in range(w - dist, dist, -1):
                dy, dx = moves[y, xx]
                tmp = x[y, xx].copy()
                x[y, xx] = x[y + dy, xx + dx]
                x[y + dy, xx + dx] = tmp
    return cv2.GaussianBlur(x, (0, 0), sigma)


def test_vectorised_glass_blur_matches_the_sequential_original(assets: Path) -> None:
    constants = [(0.7, 1, 2), (0.9, 2, 1), (1.0, 2, 3), (1.1, 3, 2), (1.5, 4, 2)]
    crops = []
    for im in _real(assets):
        small = cv2.resize(im, (REFERENCE_SIDE, REFERENCE_SIDE), interpolation=cv2.INTER_AREA)
        crops.append(np.ascontiguousarray(small[150:330, 150:330]))
    for sev, (sigma, dist, sweeps) in enumerate(constants, start=1):
        ours, theirs = [], []
        for i, c in enumerate(crops):
            theirs.append(1 - ssim(c, _sequential_glass(c, sigma, dist, sweeps, seed=i)))
            # The crops are at the reference scale, so the core runs on them unscaled.
            disp = GlassBlur.DISPLACEMENT[sev - 1]
            out = GlassBlur._glass(c, sigma, disp, np.random.default_rng(i))
            ours.append(1 - ssim(c, out))
        assert abs(np.mean(ours) - np.mean(theirs)) < 0.02, (sev, ours, theirs)


# ----------------------------------------------------------------------------- scaling


@pytest.mark.parametrize("name", [*BLURS, "iso_noise"])
def test_same_severity_looks_the_same_at_640_and_320(name: str, assets: Path) -> None:
    """Spatial parameters follow the short side: a 640 image perturbed and then shrunk to
    320 resembles the 320 image perturbed at the same severity.

    Both are compared with the clean 320 image: SSIM's 11-pixel window is not itself
    scale-invariant (a perfectly scaled Gaussian blur scores up to 0.08 apart if each size
    is scored at its own resolution), so the comparison is made at one size.
    """
    for s in (1, 3, 5):
        big_scores, small_scores = [], []
        for i, big in enumerate(_real(assets)):
            small = cv2.resize(big, (320, 320), interpolation=cv2.INTER_AREA)
            out_big = perturb(big, name, s, seed=0, sample_id=str(i))
            out_small = perturb(small, name, s, seed=0, sample_id=str(i))
            shrunk = cv2.resize(out_big, (320, 320), interpolation=cv2.INTER_AREA)
            big_scores.append(ssim(small, shrunk))
            small_scores.append(ssim(small, out_small))
        assert abs(np.mean(big_scores) - np.mean(small_scores)) < 0.05, (name, s)


@pytest.mark.parametrize("name", NOISES + BLURS)
def test_params_are_plain_json(name: str) -> None:
    p = get_perturbation(name)
    for s in range(1, 6):
        params = p.params(s, 480, 640, rng_for(0, name, s, "j"))
        assert json.loads(json.dumps(params)) == params


@pytest.mark.parametrize("n", [1, 2, 7, 640 * 480 * 3 + 1])
def test_uniform16_is_rng_bytes_read_as_little_endian_uint16(n: int) -> None:
    """The fast path (uint32 draws viewed as halves) must give rng.bytes' values and leave
    the generator where rng.bytes would: every noise's output depends on both."""
    from brittle.perturbations.noise import _bytes_are_uint32, _uniform16

    assert _bytes_are_uint32()  # on this machine the fast path is the one under test
    for warm in (0, 1, 3):  # a partly used 64-bit word changes where bytes start
        a, b = np.random.default_rng(9), np.random.default_rng(9)
        for g in (a, b):
            g.integers(0, 1 << 32, size=warm, dtype=np.uint32)
        expected = np.frombuffer(a.bytes(2 * n), dtype="<u2")
        np.testing.assert_array_equal(_uniform16(b, (n,)), expected)
        assert a.bit_generator.state == b.bit_generator.state
        assert a.integers(0, 1000, 5).tolist() == b.integers(0, 1000, 5).tolist()
