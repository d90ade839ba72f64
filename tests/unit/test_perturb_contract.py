"""One contract, every registered perturbation.

Each check is parametrised over the whole registry, so a new perturbation is tested the
moment it is registered: shape and dtype kept, input not mutated, deterministic for a seed,
different for another seed where random, effect (1 - SSIM) strictly increasing with
severity on real images, boxes inside the image (and untouched by photometric ones),
parameters that survive a JSON round trip.
"""

from __future__ import annotations

import itertools
import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from brittle.perturbations import catalogue, get_perturbation, perturb, rng_for
from brittle.perturbations.base import FAMILIES, SEVERITIES
from brittle.perturbations.quality import ssim

ALL = sorted(cls.name for group in catalogue().values() for cls in group)

IMAGENET_C_COMMON = {
    "gaussian_noise", "shot_noise", "impulse_noise", "defocus_blur", "glass_blur",
    "motion_blur", "zoom_blur", "snow", "frost", "fog", "brightness", "contrast",
    "elastic_transform", "pixelate", "jpeg_compression",
}  # fmt: skip
IMAGENET_C_VALIDATION = {"speckle_noise", "gaussian_blur", "spatter", "saturate"}


def _synthetic(h: int = 120, w: int = 168) -> np.ndarray:
    """A non-square image with gradients, edges, texture and saturated colours."""
    rng = np.random.default_rng(7)
    yy, xx = np.mgrid[0:h, 0:w]
    img = np.stack([xx * 255 / w, yy * 255 / h, (xx + yy) * 127 / (h + w) + 64], axis=2)
    img += rng.normal(0, 6, img.shape)
    img = img.astype(np.float32)
    cv2.rectangle(img, (20, 15), (70, 60), (250, 30, 30), -1)
    cv2.circle(img, (120, 80), 25, (20, 220, 40), -1)
    cv2.line(img, (0, h - 10), (w, 10), (255, 255, 255), 2)
    return np.clip(img, 0, 255).astype(np.uint8)


BOXES = np.array([[20, 15, 70, 60], [95, 55, 145, 105], [0, 0, 168, 120], [150, 5, 166, 30]])


def test_catalogue_covers_every_family_with_at_least_40() -> None:
    groups = catalogue()
    assert list(groups) == list(FAMILIES)
    assert len(ALL) >= 40


def test_imagenet_c_names_are_all_present_and_flagged() -> None:
    for name in IMAGENET_C_COMMON:
        assert get_perturbation(name).imagenet_c == "common", name
    for name in IMAGENET_C_VALIDATION:
        assert get_perturbation(name).imagenet_c == "validation", name


@pytest.mark.parametrize("name", ALL)
def test_shape_dtype_and_input_untouched(name: str) -> None:
    img = _synthetic()
    before = img.copy()
    p = get_perturbation(name)
    for s in SEVERITIES:
        out, _, _, params = p(img, s, rng_for(0, name, s, "a"))
        oh, ow = p.output_size(params, *img.shape[:2])
        assert out.shape == (oh, ow, 3), (name, s)
        assert out.dtype == np.uint8, (name, s)
        assert out.flags.c_contiguous or out.flags.f_contiguous
    np.testing.assert_array_equal(img, before)


@pytest.mark.parametrize("name", ALL)
def test_deterministic_for_a_seed_and_seed_sensitive_when_random(name: str) -> None:
    img = _synthetic()
    a = perturb(img, name, 3, seed=11, sample_id="x")
    b = perturb(img, name, 3, seed=11, sample_id="x")
    assert a.tobytes() == b.tobytes()
    p = get_perturbation(name)
    others = [perturb(img, name, 3, seed=s, sample_id="x") for s in (12, 13)]
    differs = any(o.shape != a.shape or o.tobytes() != a.tobytes() for o in others)
    assert differs == p.random, f"{name}: random={p.random}, yet other seeds differ={differs}"


@pytest.mark.parametrize("name", ALL)
def test_the_cache_condition_tells_apart_exactly_the_images_that_differ(name: str) -> None:
    """Runs predict once per distinct cache condition (Perturbation.cache_condition):
    cells that share one must show the models the same bytes."""
    img = _synthetic()
    p = get_perturbation(name)
    outs = {}
    for seed in (0, 1):
        for s in SEVERITIES:
            out = perturb(img, name, s, seed=seed, sample_id="x").tobytes()
            outs.setdefault(p.cache_condition(s, seed), set()).add(out)
    assert all(len(v) == 1 for v in outs.values()), name
    # Conditions are shared only where the image cannot differ.
    expected = (len(SEVERITIES) if p.graded or p.random else 1) * (2 if p.random else 1)
    assert len(outs) == expected, name


@pytest.mark.parametrize("name", ALL)
def test_params_survive_a_json_round_trip(name: str) -> None:
    img = _synthetic()
    p = get_perturbation(name)
    for s in SEVERITIES:
        rng = rng_for(3, name, s, "b")
        params = p.params(s, *img.shape[:2], rng)
        state = rng.bit_generator.state
        out = p.apply(img, params, rng)
        rng.bit_generator.state = state
        again = p.apply(img, json.loads(json.dumps(params)), rng)
        assert out.tobytes() == again.tobytes(), (name, s, params)


@pytest.mark.parametrize("name", ALL)
def test_boxes_stay_inside_and_photometric_leaves_them_alone(name: str) -> None:
    img = _synthetic()
    p = get_perturbation(name)
    for s in SEVERITIES:
        out, boxes = perturb(img, name, s, seed=5, boxes=BOXES)
        h, w = out.shape[:2]
        assert boxes.shape[1] == 4
        assert (boxes[:, :2] >= 0).all(), (name, s)
        assert (boxes[:, 2] <= w).all(), (name, s)
        assert (boxes[:, 3] <= h).all(), (name, s)
        assert (boxes[:, 2:] >= boxes[:, :2]).all(), (name, s)
        if not p.geometric:
            np.testing.assert_array_equal(boxes, BOXES)


def _real_images(assets: Path, n: int = 4) -> list[np.ndarray]:
    files = sorted((assets / "css-valid" / "images").glob("*.jpg"))[:: 114 // n][:n]
    out = []
    for f in files:
        im = cv2.cvtColor(cv2.imread(str(f)), cv2.COLOR_BGR2RGB)
        out.append(cv2.resize(im, (320, 320), interpolation=cv2.INTER_AREA))
    return out


@pytest.mark.parametrize("name", ALL)
def test_effect_grows_strictly_with_severity_on_real_images(name: str, assets: Path) -> None:
    images = _real_images(assets)
    p = get_perturbation(name)
    effect = []
    for s in SEVERITIES:
        vals = [1 - ssim(im, perturb(im, name, s, seed=0, sample_id=str(i))) for i, im in
                enumerate(images)]  # fmt: skip
        effect.append(float(np.mean(vals)))
    assert effect[0] > 0.0005, f"{name}: severity 1 changes nothing ({effect})"
    if p.graded:
        assert all(a < b for a, b in itertools.pairwise(effect)), (name, effect)
    else:
        assert max(effect) - min(effect) < 1e-9, (name, effect)
